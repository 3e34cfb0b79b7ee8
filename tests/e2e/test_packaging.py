"""An installed wheel, not only the checkout, makes `twistd chatd` work."""

import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile

from tests.chatd_process import REPO, TIMEOUT_SECONDS, TWISTD, LineClient

SOURCES = ["setup.cfg", "pyproject.toml", "README.md", "chatd", "twisted"]


def test_wheel_carries_the_plugin_and_twistd_runs_chatd_from_it(tmp_path):
    """Build a wheel, install it away from the checkout, and run `twistd -n chatd` from there."""
    source = tmp_path / "source"  # a copy, so building leaves the checkout untouched
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "dropin.cache"))
        else:
            shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True, timeout=300,
    )
    (wheel,) = wheels.glob("chatd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/chatd_plugin.py" in names
    assert "twisted/__init__.py" not in names and "twisted/plugins/__init__.py" not in names
    assert "chatd/service/tap.py" in names
    assert "chatd/core/confusables.tsv" in names
    assert {"chatd/web/static/index.html", "chatd/web/static/chat.js", "chatd/web/static/chat.css"} <= set(names)
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert "chatd-listen = chatd.lan.listen:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True, timeout=300,
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)  # the installed copy only, never the checkout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    listing = subprocess.run([str(TWISTD), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert any(line.split()[:1] == ["chatd"] for line in listing.stdout.splitlines()), listing.stdout

    port_file = elsewhere / "port"
    server = subprocess.Popen(
        [str(TWISTD), "-n", "--pidfile=", "chatd", "--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "wheel", "--echo-port", "0", "--web-port", "0", "--irc-port", "0"],
        cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for line in server.stdout:
            if "web page listening on" in line:  # after the chat room's line
                break
        client = LineClient(int(port_file.read_text()))
        assert client.read_line() == "*** Welcome to chatd on wheel. 0 users online."
        client.close()
        web_port = int(line.rsplit(":", 1)[1])
        page = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/chat.js", timeout=TIMEOUT_SECONDS).read()
        assert page.startswith(b"// chatd's chat page.")  # the page's files, from the wheel
        imported = subprocess.run(
            [sys.executable, "-c", "import chatd; print(chatd.__file__)"], cwd=elsewhere, env=env,
            capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
        )
        assert imported.stdout.startswith(str(site))
    finally:
        server.terminate()
        server.wait(TIMEOUT_SECONDS)
        server.stdout.close()
