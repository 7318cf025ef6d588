"""`aecodec train` runs itself again with tcmalloc (aecodec/train/malloc.py), and only as the aecodec program."""

import sys

import pytest
from click.testing import CliRunner

from aecodec.cli import main
from aecodec.train import malloc

LIBRARY = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


@pytest.mark.parametrize("program", ["/usr/local/bin/aecodec", "/site-packages/aecodec/__main__.py"])
def test_the_program_starts_again_with_tcmalloc_preloaded(program):
    command, env = malloc.restart_command([program, "train", "--minutes", "5"], {"LD_PRELOAD": "libx.so", "A": "1"},
                                          LIBRARY, already_loaded=False)
    assert command == [sys.executable, "-m", "aecodec", "train", "--minutes", "5"]
    assert env["LD_PRELOAD"] == f"{LIBRARY} libx.so" and env["A"] == "1" and env[malloc.TRIED]


@pytest.mark.parametrize("argv, env, library, loaded", [
    (["/usr/bin/aecodec", "train"], {}, LIBRARY, True),  # already running with it
    (["/usr/bin/aecodec", "train"], {}, None, False),  # not installed
    (["/usr/bin/aecodec", "train"], {malloc.TRIED: "1"}, LIBRARY, False),  # tried once: never a loop
    (["/usr/bin/pytest", "tests"], {}, LIBRARY, False),  # another program called the command
    ([], {}, LIBRARY, False),
])
def test_no_restart(argv, env, library, loaded):
    assert malloc.restart_command(argv, env, library, loaded) is None


def test_library_path_finds_it_or_says_none(tmp_path):
    assert malloc.library_path((str(tmp_path),)) is None
    (tmp_path / malloc.LIBRARY).write_bytes(b"")
    assert malloc.library_path(("/nonexistent", str(tmp_path))) == str(tmp_path / malloc.LIBRARY)


def test_asking_for_tcmalloc_without_it_is_a_usage_error(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    monkeypatch.setattr(malloc, "library_path", lambda: None)
    result = CliRunner().invoke(main, ["train", "--tcmalloc", "--minutes", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "apt install libtcmalloc-minimal4" in result.output
