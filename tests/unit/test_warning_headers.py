"""API warnings travel as `Warning: 299 - "<quoted text>"`: what the server escapes, the client
reads back unchanged."""

from __future__ import annotations

from aiohttp import web

from kubeling.apiserver.bodies import add_warnings
from kubeling.client.rest import _warning_text


def test_quotes_and_backslashes_survive_the_round_trip() -> None:
    text = 'Pod "solo": nothing recreates it; C:\\ is not a path here'
    response = web.Response()
    add_warnings(response, [text])

    (header,) = response.headers.getall("Warning")

    assert header.startswith('299 - "') and header.endswith('"')
    assert _warning_text(header) == text


def test_a_header_without_the_299_code_is_taken_as_it_is() -> None:
    assert _warning_text("something else") == "something else"
