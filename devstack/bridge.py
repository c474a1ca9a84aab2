"""Where `sam local`'s containers reach the local stack: docker's bridge address, and only from the bridge.

SAM runs each function in a container on docker's default bridge, never with host networking, so a
function reaches this machine at the bridge's address (docker0: 172.17.0.1), not at 127.0.0.1. With
`make dev SAM_LOCAL=1` moto and the local Mixpanel listen there as well, on sockets bound to the
bridge device (SO_BINDTODEVICE): Linux accepts a packet for any local address on any interface, so
without it a machine on the same network that routes 172.17.0.1 to this one could reach them too.
Docker Desktop (macOS) forwards host.docker.internal to the host's 127.0.0.1 by itself.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BRIDGE = "docker0"
DOCKER_DESKTOP_HOST = "host.docker.internal"
_SIOCGIFADDR = 0x8915  # linux/sockios.h: an interface's IPv4 address


class BridgeError(Exception):
    """No bridge to listen on; the message says what to do."""


@dataclass(frozen=True)
class ContainerRoute:
    """How a container reaches this machine: the host for its URLs, and where the servers must also listen."""

    host: str
    device: str | None = None  # None: nothing more to listen on (Docker Desktop reaches 127.0.0.1)

    def describe(self) -> str:
        if self.device is None:
            return f"{self.host} (Docker Desktop forwards it to this machine's 127.0.0.1)"
        return f"{self.host}, docker's bridge {self.device}, accepting only connections that arrive on it"


def container_route(environ: Mapping[str, str]) -> ContainerRoute:
    """The route for this machine: Docker Desktop's name on macOS, else the bridge's address (DOCKER_BRIDGE, docker0)."""
    if sys.platform == "darwin":
        return ContainerRoute(DOCKER_DESKTOP_HOST)
    name = environ.get("DOCKER_BRIDGE", "").strip() or DEFAULT_BRIDGE
    if not Path("/sys/class/net", name, "bridge").is_dir():
        raise BridgeError(
            f"{name} is not a bridge on this machine: start the Docker engine first (it creates docker0), "
            "or set DOCKER_BRIDGE to the bridge its containers use"
        )
    address = interface_address(name)
    if not ipaddress.ip_address(address).is_private:
        raise BridgeError(f"{name} has the public address {address}: the local stack listens on private ones only")
    return ContainerRoute(address, name)


def interface_address(name: str) -> str:
    """An interface's IPv4 address, as `ip -4 addr show` prints it."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError as error:
            raise BridgeError(f"{name} has no IPv4 address ({error.strerror})") from None
    return socket.inet_ntoa(answer[20:24])


def bridge_socket(route: ContainerRoute, port: int) -> socket.socket:
    """A listening TCP socket on the bridge's address and `port` that accepts only connections arriving on the bridge."""
    if route.device is None:
        raise ValueError("this route needs no second listener")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Linux 5.7+ lets an unprivileged process bind an unbound socket to a device.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, route.device.encode())
        sock.bind((route.host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
