"""A small run of the benchmark load generator against chatd, as a correctness test (not a timing test)."""

import sys

from chatd_process import REPO, ChatdProcess

sys.path.insert(0, str(REPO / "benchmarks"))

from loadgen import fan_out  # noqa: E402
from run import CHATD_UNTHROTTLED  # noqa: E402


def test_fan_out_delivers_every_line_once_in_order(tmp_path):
    """12 clients, 4 senders x 30 lines: every receiver gets every other sender's lines exactly once, in order."""
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file),
                          *CHATD_UNTHROTTLED, cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        result = fan_out(int(port_file.read_text()), clients=12, senders=4, lines=30, size=64, timeout=60)
    finally:
        server.stop()
    assert result.expected == 4 * 30 * 11
    assert (result.deliveries, result.lost, result.duplicated, result.reordered) == (result.expected, 0, 0, 0)
    assert result.latencies_ms
