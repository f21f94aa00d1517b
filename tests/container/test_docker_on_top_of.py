"""A layer built in the Lambda build image on top of a base layer: the base travels in build.json as data (what it
holds, not a host path), and the build in the image resolves against it and leaves it out, as a local build does."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_pip_layer import InvalidInputError

from ._docker_tier import Built, container_build

BASE_HOLDS = {"requests", "urllib3", "idna", "charset-normalizer", "certifi", "python-dateutil"}


def test_a_layer_on_top_of_the_base_holds_none_of_its_distributions(cold_build: Built, tmp_path: Path) -> None:
    """The base is the cold build (requests 2.32.3 and its dependencies, python-dateutil); the team asks for
    requests, unpinned, and rich."""
    team = container_build(
        tmp_path, "requests\nrich==13.9.4\n", installer="pip", on_top_of=(cold_build.result.zip_path,)
    )
    names = {pin.split("==")[0] for pin in team.result.distributions}
    assert "rich" in names
    assert names.isdisjoint(BASE_HOLDS)
    assert "requests==2.32.3" in team.result.excluded  # installed in the base's version, then left out
    assert not [n for n in team.names() if n.startswith(("python/requests/", "python/urllib3/"))]


def test_a_conflict_with_the_base_is_refused_in_the_image_naming_both_versions(
    cold_build: Built, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        container_build(tmp_path, "requests==2.31.0\n", installer="pip", on_top_of=(cold_build.result.zip_path,))
    assert caught.value.what == (
        f"requests==2.31.0 conflicts with the base layer {cold_build.result.zip_path}, which holds requests 2.32.3"
    )
