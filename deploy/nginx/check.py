"""`nginx -t` for deploy/nginx/site.conf (make deploy-check), as any user, without /etc/nginx.

The site is included in a minimal nginx.conf under a temporary prefix. `nginx -t` opens the
certificates and binds the listening addresses, so the test copy names a throwaway self-signed
certificate and free ports on 127.0.0.1; every other line is tested as written (and served as
written by tests/deploy/test_site.py).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SITE = Path(__file__).resolve().parent / "site.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CERTIFICATE = re.compile(r"^([ \t]*ssl_certificate(?:_key)?)[ \t]+[^\s;]+;", re.M)
LISTEN = re.compile(r"^([ \t]*listen)[ \t]+([^\s;]+)", re.M)
WRAPPER = """pid {dir}/nginx.pid;
error_log stderr;
events {{}}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  include {dir}/site.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(directory: Path, site: str | None = None) -> dict[str, int]:
    """Writes nginx.conf, the site and a certificate into `directory`; returns the port that
    stands in for each listening address of the site ("443", "[::]:443", ...)."""
    site = SITE.read_text() if site is None else site
    if not CERTIFICATE.search(site) or not LISTEN.search(site):
        raise SystemExit(f"{SITE}: no ssl_certificate or listen line to stand in for")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=assistant.example.org"]
        + ["-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True,
        capture_output=True,
    )
    site = CERTIFICATE.sub(
        lambda m: f"{m[1]} {directory / ('key.pem' if m[1].endswith('_key') else 'cert.pem')};",
        site,
    )
    ports: dict[str, int] = {}

    def listen(match: re.Match[str]) -> str:
        port = ports.setdefault(match[2], free_port())
        return f"{match[1]} 127.0.0.1:{port}"

    (directory / "site.conf").write_text(LISTEN.sub(listen, site))
    (directory / "nginx.conf").write_text(WRAPPER.format(dir=directory))
    return ports


def command(directory: Path, *args: str) -> list[str]:
    return [NGINX, "-e", "stderr", "-p", str(directory), "-c", str(directory / "nginx.conf"), *args]


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        prepare(Path(name))
        result = subprocess.run(command(Path(name), "-t", "-q"))
    if result.returncode:
        sys.exit(f"nginx -t failed for {SITE}")
    print(f"nginx -t: {SITE.relative_to(SITE.parents[2])} is valid")


if __name__ == "__main__":
    main()
