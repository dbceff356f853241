"""How often the push machinery does what, and how long it waits on the channel layer.

Read as `timing.NAME` at call time (never copied at import), so a test can shorten them."""

from __future__ import annotations

CHANGE_DELAY = 1.0  # at most one push per site per second for changes
TICK_SECONDS = 5.0  # steady refresh for sites with viewers (and their group membership)
PRESENCE_SECONDS = 1.0  # how often this process says which sites it has viewers of
PRESENCE_TTL = 5.0
MEMO_SECONDS = 1.0
RETRY_SECONDS = 1.0  # after the channel layer failed, before the hub tries it again
# One channel-layer call (group_add, group_discard, group_send) against Redis takes about
# a millisecond, a reconnect a few; 2 s leaves room for a busy Redis while a widget whose
# socket cannot join its site still gets its 4503 within a few seconds, not never.
LAYER_SECONDS = 2.0
# A hub with viewers hears its sites' refresh at least every TICK_SECONDS; a receive that
# hears nothing for three of them is waiting on a connection that will never answer
# (Redis frozen, a silent network failure) and is started again on a new one.
RECEIVE_SECONDS = 3 * TICK_SECONDS
YIELD_EVERY = 50  # sockets written to between two turns of the event loop
