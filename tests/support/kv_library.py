"""A tiny function library for transport tests: each function touches only ``KEYS[1]``, so
it runs anywhere a key of its slot may be served (including a half-migrated slot)."""

from __future__ import annotations

NAME = "sstest_kv"
SOURCE = f"""#!lua name={NAME}
redis.register_function('sstest_incr', function(keys, args) return redis.call('INCR', keys[1]) end)
redis.register_function{{function_name='sstest_get', callback=function(keys, args)
  return redis.call('GET', keys[1]) end, flags={{'no-writes'}}}}
"""
INCR = "sstest_incr"
GET = "sstest_get"
