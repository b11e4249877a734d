#!/usr/bin/env python3
"""Drives a memcached server with pymemcache, a stock client from PyPI.

usage: pymemcache_check.py PORT

Run by examples/tests/memcached_pymemcache.rs against netlib-memcached;
works unchanged against real memcached. Every check is an assert; the script
prints one line per check and "ALL OK" at the end, and exits non-zero on the
first failure.
"""

import sys

from pymemcache.client.base import Client

PORT = int(sys.argv[1])
# Default serde: bytes and str go out as-is; timeouts keep a hung server
# from hanging the test.
client = Client(("127.0.0.1", PORT), connect_timeout=5, timeout=10)


def check(name, condition):
    if not condition:
        print(f"FAIL {name}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


client.flush_all()

# set / get
check("set returns True", client.set("alpha", b"one") is True)
check("get returns the value", client.get("alpha") == b"one")
check("get of a missing key is None", client.get("missing") is None)
check("set overwrites", client.set("alpha", b"uno") and client.get("alpha") == b"uno")
check("empty value", client.set("empty", b"") and client.get("empty") == b"")
check("binary value", client.set("bin", bytes(range(256))) and client.get("bin") == bytes(range(256)))

# get_many
client.set_many({"m1": b"v1", "m2": b"v2", "m3": b"v3"})
many = client.get_many(["m1", "m2", "nope", "m3"])
check("get_many returns present keys only", many == {"m1": b"v1", "m2": b"v2", "m3": b"v3"})

# add / replace / append / prepend
check("add of a new key stores", client.add("added", b"a", noreply=False) is True)
check("add of an existing key does not", client.add("added", b"b", noreply=False) is False)
check("replace of a missing key does not store", client.replace("nothere", b"x", noreply=False) is False)
check("replace of a present key stores", client.replace("added", b"c", noreply=False) is True)
client.append("added", b"d", noreply=False)
client.prepend("added", b"b", noreply=False)
check("append and prepend", client.get("added") == b"bcd")

# gets / cas
value, token = client.gets("alpha")
check("gets returns value and cas token", value == b"uno" and token is not None)
check("cas with the right token stores", client.cas("alpha", b"dos", token, noreply=False) is True)
check("cas with a stale token is refused", client.cas("alpha", b"tres", token, noreply=False) is False)
check("cas of a missing key is None", client.cas("ghost", b"x", b"1", noreply=False) is None)
check("value after cas", client.get("alpha") == b"dos")

# incr / decr
client.set("counter", b"10")
check("incr", client.incr("counter", 5, noreply=False) == 15)
check("decr", client.decr("counter", 3, noreply=False) == 12)
check("decr stops at zero", client.decr("counter", 100, noreply=False) == 0)
check("incr of a missing key is None", client.incr("nocounter", 1, noreply=False) is None)
client.set("big", b"18446744073709551615")
check("incr wraps at 2^64", client.incr("big", 2, noreply=False) == 1)

# touch
check("touch of a present key", client.touch("alpha", 100, noreply=False) is True)
check("touch of a missing key", client.touch("ghost", 100, noreply=False) is False)

# delete
check("delete of a present key", client.delete("alpha", noreply=False) is True)
check("delete of a missing key", client.delete("alpha", noreply=False) is False)
check("deleted key is gone", client.get("alpha") is None)

# noreply: pymemcache's default for set/delete/...; the next reply must
# still line up with the next command.
client.set("quiet", b"1", noreply=True)
client.incr("quiet", 1, noreply=True)
client.delete("quiet-missing", noreply=True)
client.append("quiet", b"0", noreply=True)
check("noreply commands leave the stream in step", client.get("quiet") == b"20")
client.delete("quiet", noreply=True)
check("noreply delete", client.get("quiet") is None)

# A large value (~500 KB, under the 1 MiB item limit).
large = bytes((i * 31 + 7) % 251 for i in range(500 * 1024))
check("large set", client.set("large", large, noreply=False) is True)
check("large get", client.get("large") == large)
many = client.get_many(["large", "m1", "large2"])
check("large value in a multi-get", many == {"large": large, "m1": b"v1"})

# A value over the limit is refused, and the connection stays usable.
too_big = b"x" * (2 * 1024 * 1024)
try:
    client.set("toobig", too_big, noreply=False)
    refused = False
except Exception as e:  # pymemcache raises MemcacheServerError
    refused = "too large" in str(e)
check("oversized value refused with SERVER_ERROR", refused)
check("connection usable after a refusal", client.get("m1") == b"v1")

# flush_all
check("flush_all", client.flush_all(noreply=False) is True)
check("flush_all empties the cache", client.get_many(["m1", "m2", "large"]) == {})

# version and stats
check("version", client.version().startswith(b"1.6"))
stats = client.stats()
check("stats has counters", stats[b"cmd_get"] > 0 and stats[b"curr_connections"] >= 1)

client.quit()
print("ALL OK", flush=True)
