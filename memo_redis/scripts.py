"""Lua scripts that make a store, an invalidation and a lock release atomic on the server.

Every script touches only the keys it is given, so on Redis Cluster the caller can keep one atomic
step in one hash slot.
"""

from __future__ import annotations

# KEYS: gen_1..gen_n, fence, value, lock, index   (index may be "" for none)
# ARGV: n, mode ("c" checked against what the lookup saw / "u" unchecked; a second letter "p"
#       prunes expired index members), head ("" = plain
#       value: tail stored without envelope), tail,
#       ttl_ms ("0" = no expiry), lock token ("" = none), observed fence ("" = none),
#       index ttl s ("0" = none),
#       then n observed generations ("" = missing), then n fresh tokens for missing generations
#       (omitted when every observed generation exists: a checked store then never creates one).
# Returns 1 when stored, 0 when refused (an invalidation happened since the lookup).
STORE = """
local n = tonumber(ARGV[1])
local vkey, lock, idx = KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]
local token = ARGV[6]
local function release()
  if token ~= '' and redis.call('GET', lock) == token then redis.call('DEL', lock) end
end
local checked = string.sub(ARGV[2], 1, 1) == 'c'
local prune = string.sub(ARGV[2], 2, 2) == 'p'
if checked and (redis.call('GET', KEYS[n + 1]) or '') ~= ARGV[7] then release() return 0 end
local gens = {}
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  if checked and (cur or '') ~= ARGV[8 + i] then release() return 0 end
  if not cur then
    cur = ARGV[8 + n + i]
    redis.call('SET', KEYS[i], cur)
  end
  gens[i] = cur
end
-- an empty head stores the tail as is: a plain value in the seed's JSON format
local value = ARGV[4]
if ARGV[3] ~= '' then
  value = ARGV[3] .. string.sub(redis.sha1hex(table.concat(gens, '|')), 1, 16) .. ARGV[4]
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('SET', vkey, value, 'PX', ttl) else redis.call('SET', vkey, value) end
if idx ~= '' then
  local fresh = redis.call('EXISTS', idx) == 0
  redis.call('SADD', idx, vkey)
  local ittl = tonumber(ARGV[8])
  if ittl <= 0 then
    redis.call('PERSIST', idx)
  elseif fresh then
    redis.call('EXPIRE', idx, ittl)
  else
    redis.call('EXPIRE', idx, ittl, 'GT')  -- a persistent index (an entry without TTL) stays so
  end
  if prune then  -- now and then (the client decides): drop members whose entry has expired
    for _, m in ipairs(redis.call('SRANDMEMBER', idx, 4)) do
      if redis.call('EXISTS', m) == 0 then redis.call('SREM', idx, m) end
    end
  end
end
release()
return 1
"""

# KEYS: gen_1..gen_n (the ancestors of a pattern's literal prefix are not needed: only its own)
# ARGV: fresh token per key. Replaces every given generation, making entries stamped with the old
# ones unreachable at once.
BUMP = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end
return #KEYS
"""

# KEYS: value, fence. ARGV: fence token, fence ttl ms. Deletes one entry and fences in-flight
# computations of it. Returns 1 when a live entry was deleted.
INVALIDATE_ONE = """
local existed = redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]))
return existed
"""

# KEYS: lock. ARGV: token. Compare-and-delete.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: generation keys. ARGV: a fresh token per key. Creates the missing ones (SET NX) and returns
# every current value, so a lookup that found none stores against real tokens.
INIT_GENERATIONS = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i], 'NX') end
return redis.call('MGET', unpack(KEYS))
"""

# KEYS: lock, then the keys a lookup reads. ARGV: token, lock ms. Takes the single-flight lock
# (SET NX PX) and, only when taken, returns what a lookup would see: a holder that stored and
# released just before is then noticed without another round trip. Returns nil when not taken.
LOCK_AND_READ = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return redis.call('MGET', unpack(KEYS, 2))
end
return false
"""

# KEYS: an index set (its members share its hash slot). Unlinks every member and empties the set
# on the server, in batches, without sending the names over the wire. Returns the number unlinked.
DRAIN_INDEX = """
local n = 0
while true do
  local members = redis.call('SPOP', KEYS[1], 1000)
  if #members == 0 then break end
  n = n + redis.call('UNLINK', unpack(members))
end
return n
"""
