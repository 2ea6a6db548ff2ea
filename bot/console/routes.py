"""The console's HTTP surface: sign-in pages, the app page, its JSON API and live events."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from bot import assets
from bot.console import auth, insights, insights_view, policy, views
from bot.handoff import cases, voice
from bot.handoff.categories import MAX_PER_CASE
from bot.handoff.queue import BANGKOK
from bot.handoff.service import AtLimit, Changed, Handoff, NotAllowed
from bot.ratelimit import client_address
from bot.store.handoff_models import Case, Counsellor
from bot.untrusted import loads, valid_text

STATIC = Path(__file__).resolve().parent.parent / "static"
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
# The console's style sheets and scripts, one per part of the screen (bot/static/console/).
ASSETS = (
    "console.css",
    "insights.css",
    "login.css",
    "app.js",
    "api.js",
    "labels.js",
    "queue.js",
    "case.js",
    "supervisor.js",
    "alerts.js",
    "voice.js",
    "start.js",
)
HEARTBEAT_S = 15
MAX_FORM_BYTES = 8 * 1024
MAX_JSON_BYTES = 16 * 1024
MAX_CASE_ID = 2**31 - 1  # case ids are INTEGER columns (PostgreSQL: 32 bits)

Handler = Callable[[Request, auth.Signed], Awaitable[Response]]


def _language(request: Request, given: str | None = None) -> str:
    locales = request.app.state.locales
    language = given or request.query_params.get("lang") or ""
    return (
        language if language in locales.languages else request.app.state.settings.default_language
    )


def strings(request: Request, language: str) -> dict[str, str]:
    """Every console label of one language, from locales/: the console's own and the summary's
    (topics, age bands, roles, languages), so no code identifier reaches the screen."""
    return request.app.state.locales.texts(language, ("console_", "label_"))


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.console_secure_cookie,
    )


# -- pages ---------------------------------------------------------------------------------------


def _login_page(request: Request, language: str, error: str | None, status: int = 200) -> Response:
    csrf = request.cookies.get(auth.LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    other = next(
        (lang for lang in request.app.state.locales.languages if lang != language), language
    )
    html = TEMPLATES.get_template("login.html").render(
        lang=language,
        other=other,
        other_label={"th": "ภาษาไทย", "en": "English"}.get(other, other),
        t=strings(request, language),
        csrf=csrf,
        error=error,
    )
    response = Response(html, status_code=status, media_type="text/html; charset=utf-8")
    _cookie(response, request, auth.LOGIN_CSRF_COOKIE, csrf, 3600)
    return response


async def login_form(request: Request) -> Response:
    return _login_page(request, _language(request), None)


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the only kind the console posts), first value of each field."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise ValueError("form too large")
    fields = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    # valid_text: "%00" must not reach the database (PostgreSQL refuses NUL in text)
    return {name: valid_text(values[0]) for name, values in fields.items()}


async def login_submit(request: Request) -> Response:
    """Per client address (as TRUSTED_PROXIES defines it, bot/ratelimit.py) at most
    RATE_LOGIN_PER_MIN attempts a minute, refused before any password is checked."""
    state = request.app.state
    try:
        form = await _form(request)
    except ValueError:
        return Response("form too large", status_code=413)
    language = _language(request, str(form.get("lang") or ""))
    texts = strings(request, language)
    address = client_address(request.client, state.settings.trusted_proxies)
    if address is not None and not state.login_limit.hit(address):
        return _login_page(request, language, texts.get("console_login_too_many"), 429)
    if not auth.same(str(form.get("csrf") or ""), request.cookies.get(auth.LOGIN_CSRF_COOKIE, "")):
        return _login_page(request, language, texts.get("console_login_failed"), 403)
    result = await auth.login(
        state.steps,
        str(form.get("username") or ""),
        str(form.get("password") or ""),
        request.client.host if request.client else "",
    )
    if result.token is None:
        key = "console_locked" if result.refused == "locked" else "console_login_failed"
        return _login_page(request, language, texts.get(key), 401)
    response = RedirectResponse(f"/console?lang={language}", status_code=303)
    _cookie(
        response, request, auth.COOKIE, result.token, int(auth.SESSION_LIFETIME.total_seconds())
    )
    return response


async def logout(request: Request) -> Response:
    signed = await auth.signed_in(request.app.state.sessions, request.cookies.get(auth.COOKIE))
    if signed is not None:
        try:
            form = await _form(request)
        except ValueError:
            return Response("form too large", status_code=413)
        if not auth.same(str(form.get("csrf") or ""), signed.csrf):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        await auth.logout(
            request.app.state.sessions, request.cookies[auth.COOKIE], signed.counsellor.id
        )
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/console")
    return response


async def app_page(request: Request) -> Response:
    signed = await auth.signed_in(request.app.state.sessions, request.cookies.get(auth.COOKIE))
    if signed is None:
        return RedirectResponse("/console/login", status_code=303)
    return FileResponse(STATIC / "console.html", media_type="text/html; charset=utf-8")


# -- the JSON API ----------------------------------------------------------------------------------


def api(handler: Handler, supervisor: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Signed in (401), the right role (403), and for anything that changes state the session's
    CSRF token in `X-CSRF-Token` (403)."""

    async def endpoint(request: Request) -> Response:
        signed = await auth.signed_in(request.app.state.sessions, request.cookies.get(auth.COOKIE))
        if signed is None:
            return JSONResponse({"error": "not signed in"}, status_code=401)
        if supervisor and signed.counsellor.role != "supervisor":
            return JSONResponse({"error": "supervisors only"}, status_code=403)
        if request.method == "POST" and not auth.same(
            request.headers.get("x-csrf-token"), signed.csrf
        ):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        try:
            return await handler(request, signed)
        except AtLimit as full:  # said in the counsellor's language: whose hands are full
            text = request.app.state.locales.text(full.key, _language(request), full.values)
            return JSONResponse({"error": text}, status_code=409)
        except NotAllowed as refused:
            return JSONResponse({"error": str(refused)}, status_code=409)
        except (ValueError, KeyError, TypeError) as bad:
            return JSONResponse({"error": f"malformed request: {bad}"}, status_code=400)

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise ValueError("body too large")
    body = loads(raw or b"{}")  # bot/untrusted.py: ValueError for bad or too deeply nested JSON
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _case_id(request: Request) -> int:
    case_id = int(request.path_params["case_id"])
    if not 0 < case_id <= MAX_CASE_ID:  # a larger number cannot even be looked up (400)
        raise ValueError("no such case")
    return case_id


async def me(request: Request, signed: auth.Signed) -> Response:
    c = signed.counsellor
    return JSONResponse(
        {
            "id": c.id,
            "username": c.username,
            "display_name": c.display_name,
            "particle": voice.values(c)["particle"],
            "role": c.role,
            "csrf": signed.csrf,
            "language": request.app.state.settings.default_language,
        }
    )


async def set_voice(request: Request, signed: auth.Signed) -> Response:
    """The counsellor's own name for the child and Thai particle (bot/handoff/voice.py)."""
    body = await _body(request)
    try:
        name, particle = voice.checked(body.get("display_name"), body.get("particle"))
    except voice.VoiceError:
        text = request.app.state.locales.text("console_voice_invalid", _language(request))
        return JSONResponse({"error": text}, status_code=400)
    async with request.app.state.sessions() as session:
        counsellor = await session.get(Counsellor, signed.counsellor.id)
        counsellor.display_name, counsellor.particle = name, particle
        cases.audit(session, counsellor.id, "voice", None, particle)
        await session.commit()
    return JSONResponse({"display_name": name, "particle": particle})


async def strings_endpoint(request: Request, _: auth.Signed) -> Response:
    return JSONResponse(strings(request, _language(request)))


async def queue_endpoint(request: Request, signed: auth.Signed) -> Response:
    async with request.app.state.sessions() as session:
        return JSONResponse(await views.queue_view(session, signed.counsellor))


# -- one case: every route asks bot/console/policy.py first ------------------------------------

NO_SUCH_CASE = {"error": "no such case"}
# Why a counsellor who may see the case cannot do this to it now, by the case's state.
WHY_NOT = {
    "queued": "console_case_requeued",
    "assigned": "console_claim_lost",  # only a claim is refused on a case one may see assigned
    "closed": "console_case_closed",
}


async def _case(request: Request) -> Case | None:
    async with request.app.state.sessions() as session:
        return await session.get(Case, _case_id(request))


def _refused(
    request: Request, counsellor: Counsellor, action: policy.Action, case: Case | None
) -> Response:
    """404 for a case this counsellor may not see (missing, offered, another's, closed); for one
    they may see, 409 saying in their language what happened to it (the timer returned it to the
    queue, a colleague took it, it was closed), so they are told and not left guessing."""
    if not policy.allowed(counsellor, "summary", case):
        return JSONResponse(NO_SUCH_CASE, status_code=404)
    moved = not policy.allowed(counsellor, action, case)  # else it changed and came back
    key = WHY_NOT.get(case.state, "console_case_changed") if moved else "console_case_changed"
    text = request.app.state.locales.text(key, _language(request))
    return JSONResponse({"error": text, "state": case.state}, status_code=409)


async def case_endpoint(request: Request, signed: auth.Signed) -> Response:
    """The case as this counsellor may see it: the transcript and notes only where the policy
    allows, and every such read written to the audit log."""
    state, counsellor = request.app.state, signed.counsellor
    async with state.sessions() as session:
        case = await session.get(Case, _case_id(request))
        if not policy.allowed(counsellor, "summary", case):
            return JSONResponse(NO_SUCH_CASE, status_code=404)
        whole = policy.allowed(counsellor, "transcript", case)
        view = await views.case_view(
            session, state.locales, case, _language(request), whole, voice.values(counsellor)
        )
        if whole:
            cases.audit(session, counsellor.id, "read_transcript", case.id)
            await session.commit()
    # What the assistant's topics pre-select at wrap-up; the counsellor confirms or changes it.
    view["suggested"] = state.handoff.categories.suggested(view["summary"].get("topics") or [])
    return JSONResponse(view)


async def categories(request: Request, _: auth.Signed) -> Response:
    """The helpline's categories (locales/categories.yml): ids, Thai and English labels."""
    known = request.app.state.handoff.categories
    return JSONResponse({"categories": known.listing(), "max_per_case": MAX_PER_CASE})


async def claim(request: Request, signed: auth.Signed) -> Response:
    case = await _case(request)
    if not policy.allowed(signed.counsellor, "claim", case):
        return _refused(request, signed.counsellor, "claim", case)
    if await request.app.state.handoff.claim(case.id, signed.counsellor):
        return JSONResponse({"ok": True})
    if await _case(request) is None:
        return JSONResponse(NO_SUCH_CASE, status_code=404)
    # A colleague won the race for a case this counsellor saw queued: only that is said.
    text = request.app.state.locales.text("console_claim_lost", _language(request))
    return JSONResponse({"error": text}, status_code=409)


Act = Callable[[Handoff, int, Counsellor, dict[str, Any]], Awaitable[None]]


def _case_action(action: policy.Action, act: Act) -> Handler:
    """A POST on one case, if the policy allows it: the JSON body's fields passed to the handoff
    service. If the case moved on between the two (the timer, a colleague, an erasure), the
    service refuses and the counsellor is told why, as if they had come a moment later."""

    async def handler(request: Request, signed: auth.Signed) -> Response:
        case = await _case(request)
        if not policy.allowed(signed.counsellor, action, case):
            return _refused(request, signed.counsellor, action, case)
        body = await _body(request)
        try:
            await act(request.app.state.handoff, case.id, signed.counsellor, body)
        except Changed:
            return _refused(request, signed.counsellor, action, await _case(request))
        return JSONResponse({"ok": True})

    return handler


assign = _case_action("assign", lambda h, case, who, body: h.assign(case, who, int(body["to"])))
reply = _case_action("reply", lambda h, case, who, body: h.reply(case, who, str(body["text"])))
note = _case_action("note", lambda h, case, who, body: h.note(case, who, str(body["text"])))
close = _case_action("close", lambda h, case, who, body: h.close(case, who, body["categories"]))
transfer = _case_action(
    "transfer",
    lambda h, case, who, body: h.transfer(
        case,
        who,
        int(body["to"]) if body.get("to") is not None else None,
        str(body.get("note") or ""),
    ),
)


async def supervisor(request: Request, _: auth.Signed) -> Response:
    state = request.app.state
    async with state.sessions() as session:
        return JSONResponse(
            await views.supervisor_view(session, state.settings.console_max_open_chats)
        )


async def audit_log(request: Request, _: auth.Signed) -> Response:
    async with request.app.state.sessions() as session:
        return JSONResponse(await views.audit_view(session))


def _event_for(counsellor: Counsellor, event: dict[str, Any]) -> dict[str, Any] | None:
    """What one console is told: that something changed (it reloads what it may see, through the
    policy), never which case; a reminder only to the counsellor it is for."""
    if event.get("type") == "reminder":
        return event if event.get("counsellor") == counsellor.id else None
    return {"type": event.get("type", "changed")}


async def _insights(request: Request) -> dict[str, Any]:
    """The aggregates of `?from=&to=` (bot/console/insights.py); ValueError for a bad range."""
    state = request.app.state
    span = insights.Range.parse(
        request.query_params.get("from"),
        request.query_params.get("to"),
        datetime.now(BANGKOK).date(),
    )
    hours = state.settings.handoff_hours.get(state.settings.default_language, "")
    async with state.sessions() as session:
        return await insights.Insights(session, span, hours).compute()


def _labels(request: Request) -> insights_view.Labels:
    state = request.app.state
    return insights_view.Labels(state.locales, state.handoff.categories, _language(request))


async def insights_json(request: Request, signed: auth.Signed) -> Response:
    if not policy.supervises(signed.counsellor):
        return JSONResponse({"error": "supervisors only"}, status_code=403)
    return JSONResponse(await _insights(request))


async def insights_csv(request: Request, signed: auth.Signed) -> Response:
    if not policy.supervises(signed.counsellor):
        return JSONResponse({"error": "supervisors only"}, status_code=403)
    data = await _insights(request)
    name = f"insights_{data['from']}_{data['to']}.csv"
    return Response(
        insights_view.as_csv(data, _labels(request)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def insights_page(request: Request) -> Response:
    signed = await auth.signed_in(request.app.state.sessions, request.cookies.get(auth.COOKIE))
    if signed is None:
        return RedirectResponse("/console/login", status_code=303)
    if not policy.supervises(signed.counsellor):
        return Response("supervisors only", status_code=403)
    label = _labels(request)
    context: dict[str, Any] = {"lang": label.language, "t": label, "error": False}
    try:
        data = await _insights(request)
        context.update(insights_view.page(data, label), first=data["from"], last=data["to"])
    except ValueError:
        params = request.query_params
        context.update(error=True, first=params.get("from", ""), last=params.get("to", ""))
    html = TEMPLATES.get_template("insights.html").render(**context)
    status = 400 if context["error"] else 200
    return Response(html, status_code=status, media_type="text/html; charset=utf-8")


async def events(request: Request, signed: auth.Signed) -> Response:
    """Server-sent events; an open console also counts as its counsellor being online."""
    state = request.app.state
    token = request.cookies.get(auth.COOKIE)

    async def stream() -> AsyncIterator[str]:
        with state.handoff.events.subscription() as queue:
            yield "retry: 3000\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except asyncio.TimeoutError:
                    if await auth.signed_in(state.sessions, token) is None:
                        return
                    yield ": still here\n\n"
                    continue
                shown = _event_for(signed.counsellor, event)
                if shown is not None:
                    yield f"data: {json.dumps(shown)}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


routes = [
    Route("/console/login", login_form, methods=["GET"]),
    Route("/console/login", login_submit, methods=["POST"]),
    Route("/console/logout", logout, methods=["POST"]),
    Route("/console", app_page, methods=["GET"]),
    Route("/console/insights", insights_page, methods=["GET"]),
    Route("/console/api/me", api(me), methods=["GET"]),
    Route("/console/api/me", api(set_voice), methods=["POST"]),
    Route("/console/api/strings", api(strings_endpoint), methods=["GET"]),
    Route("/console/api/queue", api(queue_endpoint), methods=["GET"]),
    Route("/console/api/categories", api(categories), methods=["GET"]),
    Route("/console/api/cases/{case_id:int}", api(case_endpoint), methods=["GET"]),
    Route("/console/api/cases/{case_id:int}/claim", api(claim), methods=["POST"]),
    Route(
        "/console/api/cases/{case_id:int}/assign", api(assign, supervisor=True), methods=["POST"]
    ),
    Route("/console/api/cases/{case_id:int}/reply", api(reply), methods=["POST"]),
    Route("/console/api/cases/{case_id:int}/note", api(note), methods=["POST"]),
    Route("/console/api/cases/{case_id:int}/transfer", api(transfer), methods=["POST"]),
    Route("/console/api/cases/{case_id:int}/close", api(close), methods=["POST"]),
    Route("/console/api/supervisor", api(supervisor, supervisor=True), methods=["GET"]),
    Route("/console/api/audit", api(audit_log, supervisor=True), methods=["GET"]),
    Route("/console/api/insights", api(insights_json), methods=["GET"]),
    Route("/console/api/insights.csv", api(insights_csv), methods=["GET"]),
    Route("/console/api/events", api(events), methods=["GET"]),
    *assets.routes("/console/assets", STATIC / "console", ASSETS),
]
