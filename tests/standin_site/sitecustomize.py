"""Keep a test's Python process offline: Python imports this module at start-up from PYTHONPATH.

tests/standin.py puts it there for the script it runs. Every host name in $STANDIN_HOSTS ("name=port,...")
resolves to 127.0.0.1 on that port, whatever port the caller asked for (443 for https://), so `requests`
and aiohttp reach the stand-in while TLS still checks the real name. Loopback names resolve as usual.
Every other name fails at once, as on a machine without DNS, so no provider's request leaves the machine;
or, if $STANDIN_EVERYWHERE names a port, resolves to 127.0.0.1 on that port, so the stand-in sees what
every provider would send.
"""

import os
import socket
from typing import Any

_getaddrinfo = socket.getaddrinfo
_ROUTES = {
    name: int(port)
    for name, _, port in (item.partition("=") for item in os.environ.get("STANDIN_HOSTS", "").split(","))
    if port
}
_EVERYWHERE = int(os.environ.get("STANDIN_EVERYWHERE") or 0)
_LOOPBACK = {None, "localhost", "127.0.0.1", "::1"}


def _offline(host: bytes | str | None, port: bytes | str | int | None, *args: Any, **kw: Any) -> Any:
    """socket.getaddrinfo, offline: see the module's docstring."""
    name = host.decode() if isinstance(host, bytes) else host
    name = name.lower().rstrip(".") if name else name
    if name in _ROUTES:
        return _getaddrinfo("127.0.0.1", _ROUTES[name], *args, **kw)
    if name in _LOOPBACK:
        return _getaddrinfo(host, port, *args, **kw)
    if _EVERYWHERE:
        return _getaddrinfo("127.0.0.1", _EVERYWHERE, *args, **kw)
    raise socket.gaierror(socket.EAI_NONAME, f"{name}: offline in this test (tests/standin_site)")


socket.getaddrinfo = _offline
