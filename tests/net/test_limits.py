"""Connection counting and the open-files limit (chatd.net.limits)."""

import subprocess
import sys

from tests.chatd_process import environment

from chatd.net.limits import RESERVED_DESCRIPTORS, ConnectionLimits


def test_connection_limits_count_in_all_and_per_address():
    """Over either limit is refused with its reason; releasing frees the slot."""
    limits = ConnectionLimits(max_clients=3, max_per_address=2)
    assert [limits.admit("10.0.0.1"), limits.admit("10.0.0.1"), limits.admit("10.0.0.1")] == [
        None, None, "too many connections from your address"]
    assert limits.admit("10.0.0.2") is None
    assert limits.admit("10.0.0.3") == "server full"
    limits.release("10.0.0.1")
    assert limits.admit("10.0.0.3") is None
    assert limits.total == 3


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit():
    """Started with a low soft limit, chatd raises it and reports room for that many connections less its reserve."""
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from chatd.net.limits import raise_open_files_limit\n"
        "capacity = raise_open_files_limit()\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard, capacity)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=environment(), capture_output=True, text=True, check=True)
    soft, hard, capacity = (int(value) for value in result.stdout.split())
    assert soft == hard > 256
    assert capacity == hard - RESERVED_DESCRIPTORS
