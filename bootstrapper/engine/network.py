"""The download settings of every command that fetches, built one way.

`run`, the daemon, `plan`, `validate` (and `--deep`) and `convert` all get their `FetchOptions` here,
so they trust the same roots, send the same headers and use the same proxy with the same
exceptions: a manifest that `plan` could read is one the Mac can read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bootstrapper.fetch.model import FetchOptions
from bootstrapper.fetch.proxy import ProxyBypass

if TYPE_CHECKING:
    from bootstrapper.config import Config
    from bootstrapper.platform.base import Platform, SystemProxy

log = logging.getLogger(__name__)


def fetch_options(
    config: Config, manifest_url: str | None = None, system_proxy: SystemProxy | None = None
) -> FetchOptions:
    """Download options from the settings; the configured headers go to the manifest's host only.

    The `proxy` setting wins over the Mac's own HTTPS proxy (`system_proxy`); the Mac's exceptions
    belong to the Mac's proxy and apply only with it.
    """
    auth: dict[str, dict[str, str]] = {}
    if config.headers and manifest_url:
        host = urlsplit(manifest_url).hostname
        if host:
            auth[host] = dict(config.headers)
    proxy, bypass = config.proxy, ProxyBypass()
    if proxy is None and system_proxy is not None:
        proxy = system_proxy.url
        bypass = ProxyBypass(system_proxy.exceptions, system_proxy.exclude_simple)
    return FetchOptions(
        concurrency=config.concurrency,
        max_bytes=config.max_download_bytes,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        min_rate=config.min_rate,
        min_rate_window=config.min_rate_window,
        allow_http=config.allow_http,
        tls_trust="certifi" if config.tls_trust == "certifi" else "system",
        ca_bundle=Path(config.ca_bundle) if config.ca_bundle else None,
        client_cert=Path(config.client_cert) if config.client_cert else None,
        client_key=Path(config.client_key) if config.client_key else None,
        proxy=proxy,
        proxy_bypass=bypass,
        auth_headers=auth,
        local_files=manifest_url is not None and "://" not in manifest_url,
    )


async def network_options(
    config: Config, manifest_url: str | None, platform: Platform | None
) -> FetchOptions:
    """`fetch_options` with the platform's proxy, asked for only when the `proxy` setting is not set."""
    system_proxy = None
    if config.proxy is None and platform is not None:
        system_proxy = await platform.system_proxy()
        if system_proxy is not None:
            log.info(
                "using the system's HTTPS proxy %s (%d exceptions%s)",
                system_proxy.url,
                len(system_proxy.exceptions),
                ", simple host names direct" if system_proxy.exclude_simple else "",
            )
    return fetch_options(config, manifest_url, system_proxy)


def host_platform() -> Platform | None:
    """The platform whose proxy the one-shot commands use: this Mac's, or none elsewhere."""
    import sys

    if sys.platform != "darwin":
        return None
    from bootstrapper.paths import Paths
    from bootstrapper.platform.macos import MacOSPlatform

    return MacOSPlatform(Paths())


def command_options(allow_http: bool, manifest_url: str | None = None) -> FetchOptions:
    """The options of `plan`, `validate` and `convert`: the settings (profile, environment) and this
    Mac's proxy, exactly as the daemon would build them."""
    import asyncio
    import os

    from bootstrapper.config import load_config
    from bootstrapper.paths import Paths

    flags: dict[str, object] = {"allow_http": True if allow_http else None}
    config, _ = load_config(Paths(), dict(os.environ), flags)
    return asyncio.run(network_options(config, manifest_url, host_platform()))
