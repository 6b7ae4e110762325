"""Fetching an image from an http(s) URL without letting a request reach inside the network.

Only hosts the operator allows; every address a host resolves to must be global (not private, loopback,
link-local, shared, reserved or multicast) unless the operator allows private addresses; the connection goes to
the address that was checked (aiohttp connects to what the resolver returned: no second lookup); redirects are
answered, not followed; the body is capped and the whole fetch has a time limit. No proxy from the environment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway.errors import invalid


class AddressRefused(Exception):
    """The host resolved to an address that must not be reached (not an OSError: aiohttp passes it on as is)."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class CheckedResolver(AbstractResolver):
    """Resolves once and refuses the whole answer if any address in it is not public."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        if not self.allow_private:
            for answer in answers:
                if not is_public(answer["host"]):
                    raise AddressRefused(f"{host} resolves to a non-public address")
        return answers

    async def close(self) -> None:
        await self.inner.close()


@dataclass(frozen=True)
class FetchPolicy:
    allowed_hosts: frozenset[str]
    allow_private: bool
    max_bytes: int
    timeout_s: float

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(
            host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:]))
            for allowed in self.allowed_hosts
        )


class ImageFetcher:
    """One aiohttp session for all fetches; create inside the event loop, close at shutdown."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        connector = aiohttp.TCPConnector(resolver=CheckedResolver(policy.allow_private), use_dns_cache=False)
        # Images are compressed already; asking for them as they are keeps a gzip bomb out of the cap's way.
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)

    async def close(self) -> None:
        await self.session.close()

    def check_url(self, url: URL, param: str, kind: str = "image") -> None:
        if not url.host:
            raise invalid(param, f"the {kind} URL has no host")
        if not self.policy.host_allowed(url.host):
            raise invalid(
                param, f"{kind}s are not fetched from {url.host} (not an allowed image host)", "host_not_allowed"
            )
        try:
            literal = ipaddress.ip_address(url.host)
        except ValueError:
            return  # a name: the resolver checks every address it resolves to
        if not self.policy.allow_private and not is_public(str(literal)):
            raise invalid(param, f"the {kind} URL points to a non-public address", "address_not_allowed")

    async def fetch(self, text: str, param: str, kind: str = "image", max_bytes: int | None = None) -> bytes:
        """An image's (or with ``kind="video"`` a video's, capped at ``max_bytes``) bytes, under the same policy."""
        url = URL(text)
        self.check_url(url, param, kind)
        headers = {"Accept": f"{kind}/*", "Accept-Encoding": "identity"}
        limit = self.policy.max_bytes if max_bytes is None else max_bytes
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                async with self.session.get(url, allow_redirects=False, headers=headers) as response:
                    return await self._body(response, param, kind, limit)
        except AddressRefused:
            raise invalid(
                param, f"the {kind} URL's host resolves to a non-public address", "address_not_allowed"
            ) from None
        except TimeoutError:
            message = f"the {kind} URL did not answer within {self.policy.timeout_s:g} s"
            raise invalid(param, message, "fetch_timeout") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            message = f"the {kind} could not be fetched ({type(error).__name__})"
            raise invalid(param, message, "fetch_failed") from None

    async def _body(self, response: aiohttp.ClientResponse, param: str, kind: str, limit: int) -> bytes:
        too_large = invalid(param, f"the {kind} is larger than the limit of {limit} bytes", f"{kind}_too_large")
        if 300 <= response.status < 400:
            message = f"the {kind} URL answered a redirect ({response.status}); redirects are not followed"
            raise invalid(param, message, "redirect_not_followed")
        if response.status != 200:
            raise invalid(param, f"the {kind} URL answered HTTP {response.status}", "fetch_failed")
        if response.content_length is not None and response.content_length > limit:
            raise too_large
        body = bytearray()
        async for chunk in response.content.iter_chunked(65536):
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)
