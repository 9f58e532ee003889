from __future__ import annotations

from server import SDL_PATH, schema_sdl


def test_schema_graphql_is_the_exported_sdl() -> None:
    assert SDL_PATH.read_text() == schema_sdl(), "schema.graphql is stale: run `python server.py export-schema`"
