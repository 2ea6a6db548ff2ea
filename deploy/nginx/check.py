"""`nginx -t` for deploy/nginx/site.conf (make deploy-check), as any user, without /etc/nginx.

The site is included in a minimal nginx.conf under a temporary prefix. `nginx -t` opens the
certificates and binds the listening addresses, so the test copy names a throwaway self-signed
certificate and free ports on 127.0.0.1; every other line is tested as written.
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
CERTIFICATE = re.compile(r"^([ \t]*ssl_certificate(?:_key)?)[ \t]+[^\s;]+;", re.M)
LISTEN = re.compile(r"^([ \t]*listen)[ \t]+[^\s;]+", re.M)
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


def testable(site: str, directory: Path) -> str:
    """The site with its certificates and listening addresses replaced, nothing else."""
    if not CERTIFICATE.search(site) or not LISTEN.search(site):
        raise SystemExit(f"{SITE}: no ssl_certificate or listen line to stand in for")
    site = CERTIFICATE.sub(
        lambda m: f"{m[1]} {directory / ('key.pem' if m[1].endswith('_key') else 'cert.pem')};",
        site,
    )
    return LISTEN.sub(lambda m: f"{m[1]} 127.0.0.1:{free_port()}", site)


def main() -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=assistant.example.org",
                "-keyout",
                str(directory / "key.pem"),
                "-out",
                str(directory / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )
        (directory / "site.conf").write_text(testable(SITE.read_text(), directory))
        (directory / "nginx.conf").write_text(WRAPPER.format(dir=directory))
        result = subprocess.run(
            [
                nginx,
                "-t",
                "-q",
                "-e",
                "stderr",
                "-p",
                str(directory),
                "-c",
                str(directory / "nginx.conf"),
            ],
        )
    if result.returncode:
        sys.exit(f"nginx -t failed for {SITE}")
    print(f"nginx -t: {SITE.relative_to(SITE.parents[2])} is valid")


if __name__ == "__main__":
    main()
