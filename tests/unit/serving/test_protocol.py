"""Choice of uvicorn's HTTP/1.1 protocol under the connection guard."""

from __future__ import annotations

import pytest

from recforge.exceptions import ConfigError
from recforge.serving._protocol import guarded_http_protocol, http_protocol_base


def test_protocol_kinds():
    from uvicorn.protocols.http.h11_impl import H11Protocol

    assert http_protocol_base("h11") is H11Protocol
    httptools = pytest.importorskip("uvicorn.protocols.http.httptools_impl")
    assert http_protocol_base("httptools") is httptools.HttpToolsProtocol
    assert http_protocol_base("auto") is httptools.HttpToolsProtocol
    guarded = guarded_http_protocol(1.0, 10, base=H11Protocol)
    assert issubclass(guarded, H11Protocol)


def test_unknown_protocol_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="http must be 'auto', 'h11' or 'httptools'"):
        http_protocol_base("h2")
