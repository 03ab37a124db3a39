"""App-relative paths: rules see the path below the mount point."""

from __future__ import annotations

import pytest

from hera_middleware.adapters.asgi import app_relative_path


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        pytest.param("/oauth/token", "", "/oauth/token", id="no-root"),
        pytest.param("/idp/oauth/token", "/idp", "/oauth/token", id="mounted"),
        pytest.param("/idp/oauth/token", "/idp/", "/oauth/token", id="root-with-slash"),
        pytest.param("/idp", "/idp", "/", id="the-root-itself"),
        pytest.param("/idpx/token", "/idp", "/idpx/token", id="not-a-segment-prefix"),
        pytest.param("/oauth/token", "/idp", "/oauth/token", id="path-without-root"),
    ],
)
def test_root_path_is_removed_when_the_path_starts_with_it(
    path: str, root_path: str, expected: str
) -> None:
    """ASGI scope paths include root_path; rules match what follows it."""
    assert app_relative_path(path, root_path) == expected
