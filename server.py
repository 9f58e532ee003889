"""Pricegraph: `python server.py` serves; `python server.py --help` lists the commands. The app itself is
`create_app(Settings)` (an ASGI app, e.g. for `uvicorn --factory server:create_app`)."""

from __future__ import annotations

from resolvers.root import SDL_PATH, schema_sdl
from routing.app import create_app
from routing.cli import cli
from routing.settings import Settings

__all__ = ["SDL_PATH", "Settings", "cli", "create_app", "schema_sdl"]

if __name__ == "__main__":
    cli()
