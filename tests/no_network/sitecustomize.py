"""Run by Python at start-up (as `sitecustomize`) in the processes of a test that puts this folder first on
PYTHONPATH, and inherited by every Python process they start: a connection to another machine or a name look-up of a
host other than this one raises, and is also written to the file that NO_NETWORK_LOG names, so that the test fails
even where the caller swallows the error (Beam falls back quietly when its Prism download fails)."""
import ipaddress
import os
import socket

_LOCAL_NAMES = {None, "", "localhost", "ip6-localhost"}


def _is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(str(host).strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _refuse(what: str):
    with open(os.environ["NO_NETWORK_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()}: {what}\n")
    raise OSError(f"the test refuses network access: {what}")


def _guard_address(method):
    def guarded(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(f"{method.__name__} {address}")
        return method(self, address, *args)
    return guarded


def _guard_lookup(lookup):
    def guarded(host, *args, **kwargs):
        if not _is_local(host):
            _refuse(f"{lookup.__name__} {host}")
        return lookup(host, *args, **kwargs)
    return guarded


if os.environ.get("NO_NETWORK_LOG"):
    for _name in ("connect", "connect_ex", "sendto"):
        setattr(socket.socket, _name, _guard_address(getattr(socket.socket, _name)))
    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, _name, _guard_lookup(getattr(socket, _name)))
