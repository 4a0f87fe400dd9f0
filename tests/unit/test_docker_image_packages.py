"""The sandbox image's Python packages: which are accepted, how their scripts are rewritten,
and the refusal when the host's Python cannot install for the image's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from actana.sandboxes.docker_image import assemble_context, inspect_image
from actana.sandboxes.docker_image_packages import (
    PACKAGES_LABEL,
    _move_scripts,
    carried_packages,
    check_same_python,
    packages_label,
    wanted_packages,
)
from actana.sandboxes.errors import ImageBuildError
from tests.unit.test_docker_image import OURS, fake, labelled


def test_configured_then_extra_packages_without_repeats():
    assert wanted_packages(["mcp>=1.25,<2"], [" mcp-server-time ", "mcp>=1.25,<2"]) == [
        "mcp>=1.25,<2",
        "mcp-server-time",
    ]
    assert wanted_packages([], ["pkg[extra]==1.0", "x; python_version >= '3.8'"]) == [
        "pkg[extra]==1.0",
        "x; python_version >= '3.8'",
    ]


@pytest.mark.parametrize("bad", ["", "  ", "--index-url=http://evil", "-r reqs.txt", "a\nb"])
def test_options_and_blank_specifiers_are_refused(bad):
    with pytest.raises(ImageBuildError, match="is not a package requirement"):
        wanted_packages([], [bad])


def test_the_label_ignores_order():
    assert packages_label(["b", "a"]) == packages_label(["a", "b"]) == '["a","b"]'


def test_a_different_package_list_means_a_rebuild():
    image = labelled(OURS)
    image["Config"]["Labels"][PACKAGES_LABEL] = packages_label(["mcp"])
    assert inspect_image(fake(image), "actana-sandbox:1", ["mcp"]).matches
    status = inspect_image(fake(image), "actana-sandbox:1", ["mcp", "mcp-server-time"])
    assert not status.matches
    assert "rebuild with `actana sandbox build-image`" in (status.problem or "")
    # Without a list to compare, the runtime alone decides.
    assert inspect_image(fake(image), "actana-sandbox:1").matches


def test_the_backend_wants_the_configured_packages_at_least():
    image = labelled(OURS)
    image["Config"]["Labels"][PACKAGES_LABEL] = packages_label(["mcp", "mcp-server-time"])
    # extras an operator added with --package are fine
    assert inspect_image(fake(image), "actana-sandbox:1", at_least=["mcp"]).matches
    status = inspect_image(fake(image), "actana-sandbox:1", at_least=["mcp", "pandas"])
    assert not status.matches
    assert 'lacks the Python packages ["pandas"]' in (status.problem or "")


@pytest.mark.parametrize(
    ("label", "expected"),
    [(None, []), ("", []), ("not json", []), ('{"a": 1}', []), ('["a", 2, "b"]', ["a", "b"])],
)
def test_a_label_not_ours_carries_no_packages(label, expected):
    assert carried_packages(label) == expected


def test_another_python_minor_is_refused_with_what_to_do():
    host = f"{sys.version_info[0]}.{sys.version_info[1]}"
    check_same_python(host, "base:1")
    with pytest.raises(ImageBuildError) as caught:
        check_same_python("3.99", "base:1")
    assert f"is 3.99, this host's is {host}" in caught.value.message
    assert "ACTANA_SANDBOX_IMAGE_PACKAGES='[]'" in caught.value.message


def test_console_scripts_get_the_images_python_and_the_shim_keeps_its_name(tmp_path: Path):
    context = assemble_context(tmp_path / "context")
    bin_dir = context / "site" / "bin"
    bin_dir.mkdir()
    (bin_dir / "tool").write_text("#!/host/venv/bin/python3.11\nimport x\n")
    (bin_dir / "mcp").write_text("#!/host/venv/bin/python\nimport mcp.cli\n")
    (bin_dir / "plain").write_text("#!/bin/sh\necho hi\n")
    _move_scripts(bin_dir, context / "scripts", "/usr/bin/python3")
    scripts = context / "scripts"
    assert (scripts / "tool").read_text() == "#!/usr/bin/python3\nimport x\n"
    assert (scripts / "plain").read_text() == "#!/bin/sh\necho hi\n"
    assert (scripts / "tool").stat().st_mode & 0o777 == 0o755
    assert not (scripts / "mcp").exists()  # the runtime's `mcp` shim owns that name
    assert not bin_dir.exists()  # nothing left behind in site/ either


def test_the_backend_compares_the_packages_as_the_build_labels_them():
    from actana.runs.backends import _image_packages
    from actana.settings import Settings

    spaced = Settings(_env_file=None, sandbox_image_packages=[" mcp>=1.25,<2 ", "mcp>=1.25,<2"])
    assert _image_packages(spaced) == ("mcp>=1.25,<2",)  # what packages_label recorded
    refused = Settings(_env_file=None, sandbox_image_packages=["--index-url=x"])
    assert _image_packages(refused) == ("--index-url=x",)  # never on a label: a refusal
