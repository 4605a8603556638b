"""The demo app's server: its port, its launch and its life, the library side of `hfcls-app`.

`start_app` loads the model once, builds the page (hfcls.app.page) and serves it on `host:port` from a
background thread; the returned `App` knows its URL and waits or closes. 127.0.0.1 by default: the page
runs the model for whoever reaches it, so reaching it from other machines is a choice (--host 0.0.0.0).
This module imports only the standard library at the top, so a command can check the port at once,
before torch and gradio load.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from hfcls.errors import HfclsError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860  # Gradio's, and a Space's


def check_port(host: str, port: int) -> None:
    """Refuse a port another server holds (or a host that is not this machine's) before any work. The
    probe binds as the server will (SO_REUSEADDR: a port in TIME_WAIT is free)."""
    if not 1 <= port <= 65535:
        raise HfclsError(f"port {port}: a TCP port is 1 to 65535", param="port")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror:
            raise HfclsError(f"host {host}: not an address or name this machine resolves", param="host") from None
        except OSError as error:
            raise port_error(host, port, error) from None


def port_error(host: str, port: int, error: OSError) -> HfclsError:
    if error.errno == errno.EADDRINUSE:
        return HfclsError(
            f"port {port} on {host} is in use (another server, or an hfcls-app still running); "
            "stop it or pass --port with a free one",
            param="port",
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return HfclsError(f"host {host}: not an address of this machine; use 127.0.0.1 or 0.0.0.0", param="host")
    return HfclsError(f"port {port} on {host}: {error.strerror}; pass --port with another one", param="port")


@dataclass
class App:
    """A running demo app."""

    page: object  # gradio.Blocks
    url: str

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C), then stop."""
        try:
            self.page.block_thread()
        finally:
            self.close()

    def close(self) -> None:
        self.page.close()


def load_page(
    checkpoint, *, examples=None, recipe=None, device=None, top_k=None, threshold=0.5, use_ema=None, title=None
):
    """The demo page of any artifact: its model loaded once; `examples`, a folder, file or glob of images
    offered under the upload."""
    from hfcls.app.model import AppModel, check_examples
    from hfcls.app.page import build_page
    from hfcls.data.images import expand_images

    files = check_examples(expand_images(str(examples))[0]) if examples is not None else None
    if isinstance(recipe, (str, Path)):
        from hfcls.recipe import load_recipe

        recipe = load_recipe(recipe)
    model = AppModel(checkpoint, recipe=recipe, device=device, top_k=top_k, threshold=threshold, use_ema=use_ema)
    return build_page(model, files, title)


def start_app(checkpoint, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **page_options) -> App:
    """Serve the demo page of `checkpoint` (load_page's options) on host:port from a background thread."""
    check_port(host, port)
    page = load_page(checkpoint, **page_options)
    return launch(page, host, port)


def launch(page, host: str, port: int) -> App:
    """Serve a built page; a port taken since it was checked is the same one-line error."""
    try:
        _, url, _ = page.launch(
            server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, share=False, ssr_mode=False
        )
    except OSError as error:  # gradio words a taken port "Cannot find empty port in range"
        page.close()
        raise port_error(host, port, OSError(errno.EADDRINUSE, str(error))) from None
    return App(page, url)
