"""Lua scripts that make a store, an invalidation and a lock release atomic on the server.

Every script touches only the keys it is given, so on Redis Cluster the caller can keep one atomic
step in one hash slot.

The race-free protocol rests on *positive* proofs, never on a key being absent: a key can vanish
by itself (a TTL, an eviction under ``maxmemory``, a flush), so "absent" must never admit a store.

* A computation first *claims* its entry (:data:`CLAIM`): it creates the entry's generation tokens
  and its fence (``SET NX`` with fresh random tokens) if they are missing, and observes them. Only
  then does the body run.
* The store (:data:`STORE`) is admitted only if the fence and every generation are still present
  and equal to what the claim observed. A successful store deletes the fence.
* An invalidation replaces the generation of a prefix with a fresh token (:data:`BUMP`), or
  deletes one entry and its fence (:data:`INVALIDATE_ONE`). Tokens are random and never reused,
  so a replaced, deleted or evicted token never comes back: every computation that observed it
  is refused, and every entry stamped with it is a miss.
"""

from __future__ import annotations

# KEYS: lock (the value key when no lock is wanted), gen_1..gen_n, fence, value
# ARGV: n, lock token ("" = no lock: only arm), lock ms, expected fence, fresh fence, fence ms,
#       expected stamp (of the generations the lock is named after), then n fresh tokens for
#       missing generations.
# Creates the missing generations and the fence (SET NX: an existing token is kept), then reads
# what a lookup reads. The lock is taken only under the state it is named after: the fence equal
# to the expected one and the generations matching the expected stamp; a lock of a computation
# from before an invalidation therefore never makes a later caller wait. Taking the lock (or
# arming without one) gives the fence a full fence ms again.
# Returns {outcome, {gen_1..gen_n, fence, value}}: outcome 1 when the lock was taken (or the
# entry armed, without a lock), 0 when the lock is held by another caller under the expected
# state, -1 when the state differs from the expected one (the lock was not tried).
CLAIM = """
local n = tonumber(ARGV[1])
local fence = KEYS[n + 2]
for i = 1, n do redis.call('SET', KEYS[i + 1], ARGV[7 + i], 'NX') end
redis.call('SET', fence, ARGV[5], 'NX', 'PX', tonumber(ARGV[6]))
local state = redis.call('MGET', unpack(KEYS, 2))
if ARGV[2] == '' then
  redis.call('PEXPIRE', fence, tonumber(ARGV[6]))
  return {1, state}
end
if state[n + 1] ~= ARGV[4] then return {-1, state} end
for i = 1, n do
  if not state[i] then return {-1, state} end
end
if string.sub(redis.sha1hex(table.concat(state, '|', 1, n)), 1, 16) ~= ARGV[7] then
  return {-1, state}
end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', tonumber(ARGV[3])) then
  return {0, state}
end
redis.call('PEXPIRE', fence, tonumber(ARGV[6]))
return {1, state}
"""

# KEYS: gen_1..gen_n, fence, value, lock, index, parent   (index may be "" for none; parent, the
#       table index that lists a row's index, is the index itself for none: one hash slot)
# ARGV: n, mode ("c" checked against what the claim observed / "u" unchecked; a second letter
#       "p" prunes expired index members), head ("" = plain value: tail stored without
#       envelope), tail, ttl_ms ("0" = no expiry), lock token ("" = none), observed fence,
#       index ttl s ("0" = none), then n tokens: the observed generations (checked) or fresh
#       tokens for missing generations (unchecked).
# A checked store needs the observed fence and generations present and unchanged: a missing one
# (deleted by an invalidation, expired or evicted) refuses it. Bookkeeping is written before the
# value, so a store refused by an error (NOPERM, WRONGTYPE) writes no value. A successful store
# deletes the fence: a computation sharing it is refused (conservative), and a plain set() fences
# the computations in flight.
# Returns 1 when stored, 0 when refused (an invalidation happened since the claim).
STORE = """
local n = tonumber(ARGV[1])
local fence, vkey, lock = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3]
local idx, parent = KEYS[n + 4], KEYS[n + 5]
local token = ARGV[6]
local function release()
  if token ~= '' and redis.call('GET', lock) == token then redis.call('DEL', lock) end
end
local checked = string.sub(ARGV[2], 1, 1) == 'c'
local prune = string.sub(ARGV[2], 2, 2) == 'p'
local gens = {}
if checked then
  local seen = ARGV[7]
  if seen == '' or redis.call('GET', fence) ~= seen then release() return 0 end
  for i = 1, n do
    local cur = redis.call('GET', KEYS[i])
    if not cur or cur ~= ARGV[8 + i] then release() return 0 end
    gens[i] = cur
  end
else
  for i = 1, n do
    local cur = redis.call('GET', KEYS[i])
    if not cur then
      cur = ARGV[8 + i]
      redis.call('SET', KEYS[i], cur)
    end
    gens[i] = cur
  end
end
local ttl = tonumber(ARGV[5])
local function record(set, member)
  local fresh = redis.call('EXISTS', set) == 0
  redis.call('SADD', set, member)
  local ittl = tonumber(ARGV[8])
  if ittl <= 0 then
    redis.call('PERSIST', set)
  elseif fresh then
    redis.call('EXPIRE', set, ittl)
  else
    redis.call('EXPIRE', set, ittl, 'GT')  -- a persistent index (an entry without TTL) stays so
  end
end
if idx ~= '' then record(idx, vkey) end
if parent ~= idx then record(parent, idx) end
-- an empty head stores the tail as is: a plain value in the seed's JSON format
local value = ARGV[4]
if ARGV[3] ~= '' then
  value = ARGV[3] .. string.sub(redis.sha1hex(table.concat(gens, '|')), 1, 16) .. ARGV[4]
end
if ttl > 0 then redis.call('SET', vkey, value, 'PX', ttl) else redis.call('SET', vkey, value) end
local function prune_set(set)  -- drop a few members whose entry (or row index) expired
  for _, m in ipairs(redis.call('SRANDMEMBER', set, 4)) do
    if redis.call('EXISTS', m) == 0 then redis.call('SREM', set, m) end
  end
end
if prune and idx ~= '' then  -- now and then (the client decides)
  prune_set(idx)
  if parent ~= idx then prune_set(parent) end
end
redis.call('DEL', fence)
release()
return 1
"""

# KEYS: gen_1..gen_n (the ancestors of a pattern's literal prefix are not needed: only its own)
# ARGV: fresh token per key. Replaces every given generation, making entries stamped with the old
# ones unreachable at once, and refusing the stores of computations that observed them.
BUMP = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end
return #KEYS
"""

# KEYS: value, fence. Deletes one entry and its fence: computations in flight observed a fence
# token that is gone for good, so their stores are refused. Creates no key (works under OOM).
# Returns 1 when a live entry was deleted.
INVALIDATE_ONE = """
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return existed
"""

# KEYS: lock, fence. ARGV: lock token, fence token ("" = leave the fence). Compare-and-delete of
# the lock; with a fence token, also deletes the fence when it still holds that token (a
# computation whose result is not stored leaves no fence behind).
RELEASE = """
local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then released = redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return released
"""

# KEYS: an index set (its members share its hash slot). ARGV: "" or the name prefix of row
# indexes (a table index lists the index sets of its rows: those are drained too, then unlinked).
# Unlinks every entry listed and empties the sets on the server, in batches, without sending the
# names over the wire. Returns the number of entries unlinked.
DRAIN_INDEX = """
local rows = ARGV[1] or ''
local function drain(set, nested)
  local n = 0
  while true do
    local members = redis.call('SPOP', set, 1000)
    if #members == 0 then break end
    local entries = {}
    for _, m in ipairs(members) do
      if nested and string.sub(m, 1, #rows) == rows then
        n = n + drain(m, false)
      else
        entries[#entries + 1] = m
      end
    end
    if #entries > 0 then n = n + redis.call('UNLINK', unpack(entries)) end
  end
  return n
end
return drain(KEYS[1], rows ~= '')
"""

# KEYS: a row's generation, the row's index, its table's index. ARGV: a fresh token. A row's
# invalidation (``sql:users:7:*``) in one round trip: replaces the row's generation (entries of
# the row unreachable at once, computations that observed it refused), then unlinks the entries
# the row's index lists and takes the row off its table's index. Returns the number unlinked.
INVALIDATE_ROW = """
redis.call('SET', KEYS[1], ARGV[1])
local n = 0
while true do
  local members = redis.call('SPOP', KEYS[2], 1000)
  if #members == 0 then break end
  n = n + redis.call('UNLINK', unpack(members))
end
redis.call('SREM', KEYS[3], KEYS[2])
return n
"""
