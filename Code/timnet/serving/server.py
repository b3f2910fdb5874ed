"""``timnet serve``: check the address, load the model once, run the app under uvicorn.

The listening socket is bound *before* the model loads, so a taken port is one error
line at once, and ``port 0`` picks a free port (the line printed at start says which).
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from pathlib import Path

from timnet.config import DEFAULT_DATA, ServeConfig
from timnet.errors import UserError

REQUIRED = ("fastapi", "uvicorn", "python_multipart", "swagger_ui_bundle")
INSTALL_HINT = "pip install 'timnet[serve]' (or: pip install fastapi uvicorn python-multipart swagger-ui-bundle)"


def check_installed() -> None:
    """The optional ``serve`` extra, checked before anything slow."""
    import importlib.util

    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"timnet serve needs {', '.join(missing)}: {INSTALL_HINT}")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on (host, port), or one error line naming the flag."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); choose another "
                        f"--port (0 picks a free one)") from None
    return sock


def serve(test_path: str | Path, settings: ServeConfig, fold: int | None = None, data: str = DEFAULT_DATA) -> int:
    """Serve the model at ``test_path`` until Ctrl-C or SIGTERM (exit 0 either way)."""
    check_installed()
    path = Path(test_path)
    if not path.exists():
        raise UserError(f"--test_path {path}: no such file or folder; give a .keras file, a weights .hdf5 or a run "
                        f"folder such as Test_Models/<run>")
    sock = bind(settings.host, settings.port)
    try:
        import uvicorn

        from timnet.serving.app import create_app
        from timnet.serving.backend import load_backend

        backend = load_backend(path, fold, data)
        app = create_app(backend, settings)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"Serving {backend.card()['file']} ({', '.join(backend.labels)}) on http://{shown}:{port}/ "
              f"(API: /api/classify, /api/model, /healthz; docs: /docs); Ctrl-C stops", flush=True)
        if not is_loopback(settings.host):
            print(f"warning: --host {settings.host} lets other machines reach this server, which has no "
                  f"authentication: put it behind a reverse proxy with authentication and TLS", file=sys.stderr,
                  flush=True)
        config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5,
                                limit_concurrency=4 * settings.capacity + 32, server_header=False)
        # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again for the
        # previous handler: stopping is this command's normal end, so that is exit 0.
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        print("Stopped.", flush=True)
    finally:
        sock.close()
    return 0
