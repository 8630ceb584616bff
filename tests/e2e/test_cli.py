"""The `ferry` command line as a new user meets it: help, model listing, and clear start-up errors."""
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT, ferry_binary


def run(*args, timeout=30):
    return subprocess.run([str(ferry_binary()), *args], capture_output=True, text=True, timeout=timeout)


def test_serve_help_explains_the_flags():
    r = run("serve", "--help")
    assert r.returncode == 0
    for flag in ("--model-repository", "--http-port", "--model-control-mode", "--admin-key", "--exit-timeout-secs"):
        assert flag in r.stdout


def test_no_subcommand_is_an_error_with_usage():
    r = run()
    assert r.returncode != 0
    assert "serve" in r.stdout + r.stderr


def test_models_lists_the_example_repository():
    r = run("models", "--model-repository", str(ROOT / "examples" / "models"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cnn" in r.stdout and "identity" in r.stdout
    assert "INVALID" not in r.stdout


def test_models_reports_a_broken_config_and_fails(tmp_path: Path):
    shutil.copytree(ROOT / "examples" / "models" / "identity", tmp_path / "identity")
    (tmp_path / "typo").mkdir()
    (tmp_path / "typo" / "config.yaml").write_text("max_bach_size: 4\n")
    r = run("models", "--model-repository", str(tmp_path))
    assert r.returncode == 1
    assert "INVALID" in r.stdout and "max_bach_size" in r.stdout
    assert "identity" in r.stdout


def test_serve_refuses_a_missing_repository_clearly(tmp_path: Path):
    r = run("serve", "--model-repository", str(tmp_path / "absent"), "--http-port", "0")
    assert r.returncode == 2
    assert "is not a readable folder" in r.stdout + r.stderr


def test_serve_refuses_bad_flag_values():
    r = run("serve", "--model-control-mode", "sometimes")
    assert r.returncode != 0
    assert "model-control-mode" in r.stdout + r.stderr


def test_serve_on_a_port_in_use_fails_with_a_message(tmp_path: Path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run("serve", "--model-repository", str(ROOT / "examples" / "models"), "--http-address", "127.0.0.1",
                "--http-port", str(port), "--data-dir", str(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot listen" in r.stdout + r.stderr
