package redisstore

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"

	"github.com/redis/rueidis"
	"github.com/sessionkit/sessionkit"
)

// The scripts below are the only writers of session keys. Each one touches a
// single home (one hash slot), so it runs atomically on Redis Cluster too,
// except luaFollow and luaUpdateSingle, which only run on a single server.
// The Go side reads, decides and encodes; a script re-checks what the
// decision was based on (versions, index membership, activity) and applies
// it, or answers CONFLICT/RETRY so the caller can read again.
//
// Record hash fields: s state (L live, X revoked, P pending move-in,
// F forward stub), v version, b record bytes (or the target tag for F),
// p PurgeAt in µs, o source tag of a pending move.
//
// On a single server, every script that changes a live or revoked record
// or its activity also keeps the record's copy (see doc.go) in the same
// call: it is given the key prefix as cpre ("" in Cluster mode, where no
// copies exist) and derives the copy's key from the token hash inside the
// record bytes. A pending record has no copy until its move commits.

var luaLib = `
local function expire(k, ms)
  if ms then redis.call('PEXPIREAT', k, string.format('%d', ms)) else redis.call('PERSIST', k) end
end
local cpre = ''
local function ckey(b)
  local h = string.sub(b or '', ` + hashFrom + `, ` + hashTo + `)
  if #h ~= 32 then return nil end
  return cpre .. '{c:' .. string.gsub(h, '.', function(c) return string.format('%02x', string.byte(c)) end) .. '}'
end
-- putCopy stores record bytes b with activity a as one string that
-- expires at ms (nil: never).
local function putCopy(b, a, ms)
  if cpre == '' then return end
  local k = ckey(b)
  if not k then return end
  redis.call('SET', k, #b .. ':' .. b .. (a or ''))
  expire(k, ms)
end
local function delCopy(b)
  if cpre == '' then return end
  local k = ckey(b)
  if k then redis.call('DEL', k) end
end
local function purgems(p, slack)
  local n = tonumber(p)
  if not n or n == 0 then return nil end
  return math.floor(n / 1000) + slack
end
local function apurge(a) return string.match(a, '^%d+ %d+ (%d+)|') end
local function newer(a, sec, nsec)
  local s, n = string.match(a, '^(%d+) (%d+) ')
  s = tonumber(s) or 0; n = tonumber(n) or 0; sec = tonumber(sec); nsec = tonumber(nsec)
  return s > sec or (s == sec and n > nsec)
end
local function cleanup(idx, pre)
  for _, h in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    if redis.call('EXISTS', pre .. 'r:' .. h) == 0 then redis.call('ZREM', idx, h) end
  end
end
-- verify compares the index with the snapshot the caller decided on:
-- ARGV[i] = n, then n triples (handle, version, activity).
local function verify(idx, pre, i)
  local n = tonumber(ARGV[i]); i = i + 1
  local ok = redis.call('ZCARD', idx) == n
  for _ = 1, n do
    if ok then
      local h = ARGV[i]
      if not redis.call('ZSCORE', idx, h) then ok = false
      elseif redis.call('HGET', pre .. 'r:' .. h, 'v') ~= ARGV[i+1] then ok = false
      elseif (redis.call('GET', pre .. 'a:' .. h) or '') ~= ARGV[i+2] then ok = false end
    end
    i = i + 3
  end
  return ok, i
end
-- revokeAll applies ARGV[i] = m, then m tuples (handle, version, bytes, purge µs).
-- A pending copy (a move into this subject not known to be committed) is
-- deleted instead: if its move commits, the session is gone, never live.
local function revokeAll(idx, pre, i)
  local m = tonumber(ARGV[i]); i = i + 1
  for _ = 1, m do
    local r = pre .. 'r:' .. ARGV[i]
    local st = redis.call('HGET', r, 's')
    redis.call('DEL', r, pre .. 'a:' .. ARGV[i])
    if st ~= 'P' then
      redis.call('HSET', r, 's', 'X', 'v', ARGV[i+1], 'b', ARGV[i+2], 'p', ARGV[i+3])
      expire(r, purgems(ARGV[i+3], 0))
      putCopy(ARGV[i+2], '', purgems(ARGV[i+3], 0))
    end
    redis.call('ZREM', idx, ARGV[i])
    i = i + 4
  end
  return i
end
`

// create inserts a live (L) or pending (P) record, enforcing the limit the
// caller decided on against the index snapshot it read.
// KEYS: rec, act, index. ARGV: 1 home prefix, 2 handle, 3 state, 4 version,
// 5 bytes, 6 purge µs, 7 activity, 8 index score ("" = no subject), 9 source
// tag of a move, 10 cpre, 11 slack ms,
// 12 pending ttl ms, 13 "1" if a snapshot follows; then snapshot, evictions.
var luaCreate = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[10]
local st = redis.call('HGET', KEYS[1], 's')
-- A move may replace a forward stub of the same handle (left by an earlier
-- move, or the locator itself) or an old pending copy; it keeps the stub so
-- that a rollback can restore it.
-- A pending copy of the same or a later version belongs to a concurrent
-- move that may still commit: only one of the two can, so this one
-- conflicts. An older one cannot commit any more (its source moved past
-- its version) and is replaced. A live or revoked record here means the
-- session already moved in: the mover read a stale home.
local fb, fv
if st == 'F' and ARGV[3] == 'P' then
  fb, fv = redis.call('HGET', KEYS[1], 'b'), redis.call('HGET', KEYS[1], 'v')
elseif st == 'P' and ARGV[3] == 'P' then
  if (tonumber(redis.call('HGET', KEYS[1], 'v')) or 0) >= tonumber(ARGV[4]) then return 'CONFLICT' end
  fb, fv = redis.call('HGET', KEYS[1], 'fb'), redis.call('HGET', KEYS[1], 'fv')
elseif st and ARGV[3] == 'P' then
  return 'CONFLICT'
elseif st then
  return 'EXISTS'
end
local i = 14
if ARGV[8] ~= '' then
  cleanup(KEYS[3], ARGV[1])
  if ARGV[13] == '1' then
    local ok; ok, i = verify(KEYS[3], ARGV[1], i)
    if not ok then return 'RETRY' end
    revokeAll(KEYS[3], ARGV[1], i)
  end
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[2])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', ARGV[3], 'v', ARGV[4], 'b', ARGV[5], 'p', ARGV[6])
redis.call('SET', KEYS[2], ARGV[7])
expire(KEYS[2], purgems(apurge(ARGV[7]), 0))
if ARGV[3] == 'P' then
  redis.call('HSET', KEYS[1], 'o', ARGV[9])
  if fb then redis.call('HSET', KEYS[1], 'fb', fb, 'fv', fv) end
  local t = redis.call('TIME')
  expire(KEYS[1], tonumber(t[1]) * 1000 + tonumber(ARGV[12]))
else
  expire(KEYS[1], purgems(apurge(ARGV[7]), tonumber(ARGV[11])))
  putCopy(ARGV[5], ARGV[7], purgems(apurge(ARGV[7]), 0))
end
return 'OK'
`)

// update replaces a live record in place (same home) by compare-and-swap.
// KEYS: rec, act. ARGV: 1 expected version, 2 new version, 3 bytes, 4 purge
// µs, 5 activity, 6 sec, 7 nsec, 8 slack ms, 9 the offset of the token
// hash in the stored bytes and 10 the hash it must equal (else SLOW: the
// caller did not locate the record and must), both "" to skip that check,
// 11 cpre. Returns {code, activity kept}.
var luaUpdate = rueidis.NewLuaScript(luaLib + "cpre = ARGV[11]\n" + updateSrc + `
return {'OK', a}
`)

// updateSrc is the body of luaUpdate: on success, a holds the activity
// kept.
const updateSrc = `
local st = redis.call('HGET', KEYS[1], 's')
if st == 'X' then return {'REVOKED'} end
if st ~= 'L' then return {'NOTFOUND'} end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return {'CONFLICT'} end
local ob = redis.call('HGET', KEYS[1], 'b') or ''
if ARGV[9] ~= '' then
  local off = tonumber(ARGV[9])
  if string.sub(ob, off + 1, off + 32) ~= ARGV[10] then return {'SLOW'} end
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'b', ARGV[3], 'p', ARGV[4])
local a = redis.call('GET', KEYS[2])
if not (a and newer(a, ARGV[6], ARGV[7])) then
  a = ARGV[5]
  redis.call('SET', KEYS[2], a)
  expire(KEYS[2], purgems(apurge(a), 0))
end
expire(KEYS[1], purgems(apurge(a), tonumber(ARGV[8])))
-- A renewal drops the old hash's copy in the same step.
if ckey(ob) ~= ckey(ARGV[3]) then delCopy(ob) end
putCopy(ARGV[3], a, purgems(apurge(a), 0))
`

// updateSingle is luaUpdate plus the upkeep afterWrite does (token
// pointer, expiry set, locator stub), for a single server, where one script
// may change keys of several slots. KEYS: rec, act, pointer, expiry set,
// locator. ARGV: 1 to 10 of luaUpdate with 9 and 10 set, then 11 the
// expiry member, 12 "true" to extend the locator and 13 cpre.
var luaUpdateSingle = rueidis.NewLuaScript(luaLib + "cpre = ARGV[13]\n" + updateSrc + `
local p = tonumber(apurge(a)) or 0
local slack = tonumber(ARGV[8])
local function extend(k)
  local t = redis.call('PEXPIRETIME', k)
  if t == -2 then return end
  local ms = math.floor(p / 1000)
  if p == 0 then
    if t >= 0 then redis.call('PERSIST', k) end
  elseif t >= 0 and t < ms then
    redis.call('PEXPIREAT', k, string.format('%d', ms + slack))
  end
end
extend(KEYS[3])
if ARGV[12] == 'true' then extend(KEYS[5]) end
if p == 0 then redis.call('ZREM', KEYS[4], ARGV[11]) else redis.call('ZADD', KEYS[4], apurge(a), ARGV[11]) end
return {'OK', a}
`)

// touch moves activity forward. The record key is only written when its
// expiry must grow, so near-caches of the record survive ordinary use.
// KEYS: rec, act. ARGV: 1 activity, 2 sec, 3 nsec, 4 slack ms, 5 cpre.
var luaTouch = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[5]
local st = redis.call('HGET', KEYS[1], 's')
if st == 'X' then return {'REVOKED'} end
if st ~= 'L' then return {'NOTFOUND'} end
local a = redis.call('GET', KEYS[2])
if a and newer(a, ARGV[2], ARGV[3]) then return {'OK', a} end
redis.call('SET', KEYS[2], ARGV[1])
local ms = purgems(apurge(ARGV[1]), 0)
expire(KEYS[2], ms)
local t = redis.call('PEXPIRETIME', KEYS[1])
if ms == nil then
  if t >= 0 then redis.call('PERSIST', KEYS[1]) end
elseif t >= 0 and t < ms then
  expire(KEYS[1], ms + tonumber(ARGV[4]))
end
if cpre ~= '' then putCopy(redis.call('HGET', KEYS[1], 'b'), ARGV[1], ms) end
return {'OK', ARGV[1]}
`)

// revoke revokes one record by compare-and-swap.
// KEYS: rec, act, index. ARGV: 1 expected version, 2 handle, 3 cpre, then
// the revokeAll tuple count (1) and tuple.
var luaRevoke = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[3]
local st = redis.call('HGET', KEYS[1], 's')
if st == 'X' then return 'REVOKED' end
if st ~= 'L' and st ~= 'P' then return 'NOTFOUND' end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 'CONFLICT' end
local pre = string.sub(KEYS[3], 1, -2)
revokeAll(KEYS[3], pre, 4)
return 'OK'
`)

// revokeMany revokes sessions of one subject against an index snapshot.
// KEYS: index. ARGV: 1 home prefix, 2 cpre, then snapshot, then
// revocations.
var luaRevokeMany = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[2]
cleanup(KEYS[1], ARGV[1])
local ok, i = verify(KEYS[1], ARGV[1], 3)
if not ok then return 'RETRY' end
revokeAll(KEYS[1], ARGV[1], i)
return 'OK'
`)

// moveOut is the commit point of a move between homes: the record becomes a
// forward stub to the new home, where a pending copy already waits.
// KEYS: rec, act, index. ARGV: 1 expected version, 2 target tag, 3 new
// version, 4 handle, 5 purge µs, 6 slack ms, 7 cpre. On a single server
// (cpre set) it also finishes the move: the pending copy becomes live and
// the copy of the record moves with it, so no reader sees a committed
// pending record.
var luaMoveOut = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[7]
local st = redis.call('HGET', KEYS[1], 's')
if st == 'X' then return 'REVOKED' end
if st ~= 'L' then return 'NOTFOUND' end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 'CONFLICT' end
local ob = redis.call('HGET', KEYS[1], 'b')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 's', 'F', 'b', ARGV[2], 'v', ARGV[3])
expire(KEYS[1], purgems(ARGV[5], tonumber(ARGV[6])))
redis.call('ZREM', KEYS[3], ARGV[4])
if cpre ~= '' then
  delCopy(ob)
  local home = cpre .. '{' .. ARGV[2] .. '}:'
  local rk, ak = home .. 'r:' .. ARGV[4], home .. 'a:' .. ARGV[4]
  if redis.call('HGET', rk, 's') == 'P' and redis.call('HGET', rk, 'v') == ARGV[3] then
    redis.call('HSET', rk, 's', 'L')
    redis.call('HDEL', rk, 'o', 'fb', 'fv')
    local a = redis.call('GET', ak)
    local p = redis.call('HGET', rk, 'p')
    if a then p = apurge(a) end
    expire(rk, purgems(p, tonumber(ARGV[6])))
    putCopy(redis.call('HGET', rk, 'b'), a, purgems(p, 0))
  end
end
return 'OK'
`)

// finalize turns a committed pending record into a live one.
// KEYS: rec, act. ARGV: 1 version, 2 slack ms, 3 cpre.
var luaFinalize = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[3]
if redis.call('HGET', KEYS[1], 's') ~= 'P' or redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'L')
redis.call('HDEL', KEYS[1], 'o', 'fb', 'fv')
local a = redis.call('GET', KEYS[2])
local p = redis.call('HGET', KEYS[1], 'p')
if a then p = apurge(a) end
expire(KEYS[1], purgems(p, tonumber(ARGV[2])))
putCopy(redis.call('HGET', KEYS[1], 'b'), a, purgems(p, 0))
return 1
`)

// rollback removes a pending record whose move did not commit, restoring
// the forward stub it replaced, if any.
// KEYS: rec, act, index. ARGV: 1 version, 2 handle.
var luaRollback = rueidis.NewLuaScript(`
if redis.call('HGET', KEYS[1], 's') ~= 'P' or redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
local fb, fv = redis.call('HGET', KEYS[1], 'fb'), redis.call('HGET', KEYS[1], 'fv')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if fb then redis.call('HSET', KEYS[1], 's', 'F', 'b', fb, 'v', fv) end
return 1
`)

// stub creates the forward stub that lets a handle find its subject's home.
// KEYS: rec. ARGV: 1 target tag, 2 version, 3 purge µs, 4 slack ms.
var luaStub = rueidis.NewLuaScript(luaLib + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
redis.call('HSET', KEYS[1], 's', 'F', 'b', ARGV[1], 'v', ARGV[2])
expire(KEYS[1], purgems(ARGV[3], tonumber(ARGV[4])))
return 'OK'
`)

// repoint moves an existing forward stub to a new home (best effort; chains
// of stubs are followed anyway).
// KEYS: rec. ARGV: 1 old target, 2 new target, 3 version.
var luaRepoint = rueidis.NewLuaScript(`
if redis.call('HGET', KEYS[1], 's') == 'F' and redis.call('HGET', KEYS[1], 'b') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'b', ARGV[2], 'v', ARGV[3])
  return 1
end
return 0
`)

// remove deletes a session's home keys if the record is still the one the
// caller located (live or revoked, same version); else it returns -1.
// KEYS: rec, act, index. ARGV: 1 handle, 2 version, 3 cpre.
var luaRemove = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[3]
local f = redis.call('HMGET', KEYS[1], 's', 'v', 'b')
if (f[1] ~= 'L' and f[1] ~= 'X') or f[2] ~= ARGV[2] then return -1 end
delCopy(f[3])
local n = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
`)

// delIf deletes a token pointer or forward stub only while it still refers
// to the session being removed. KEYS: key. ARGV: 1 expected value.
var luaDelIf = rueidis.NewLuaScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
local v
if t == 'string' then v = redis.call('GET', KEYS[1])
elseif t == 'hash' then v = redis.call('HGET', KEYS[1], 'b') end
if v == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// maintain keeps the helper keys of a session in line after a write: it
// extends a token pointer or locator stub so it lives at least as long as
// the record (writing it only when it would expire first), or records the
// purge time in the expiry set. One script for all three lets a single
// pipeline carry them, whatever their slots.
// KEYS: key. ARGV: 1 op ("extend", "zadd"), 2 ms or µs ("0" = never),
// 3 slack ms or member.
var luaMaintain = rueidis.NewLuaScript(maintainSrc)

// maintainSHA names luaMaintain for EVALSHA in a plain pipeline: the
// script's own ExecMulti loads it on every node before each call, which
// costs a round trip per write.
var maintainSHA = func() string {
	sum := sha1.Sum([]byte(maintainSrc))
	return hex.EncodeToString(sum[:])
}()

const maintainSrc = `
if ARGV[1] == 'zadd' then
  if ARGV[2] == '0' then return redis.call('ZREM', KEYS[1], ARGV[3]) end
  return redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
end
local t = redis.call('PEXPIRETIME', KEYS[1])
if t == -2 then return 0 end
local ms = tonumber(ARGV[2])
if ms == 0 then
  if t >= 0 then redis.call('PERSIST', KEYS[1]) end
elseif t >= 0 and t < ms then
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', ms + tonumber(ARGV[3])))
end
return 1
`

// purge deletes a record whose effective PurgeAt is at or before now.
// KEYS: rec, act, index. ARGV: 1 now µs, 2 handle, 3 cpre. Returns {code,
// value}.
var luaPurge = rueidis.NewLuaScript(luaLib + `
cpre = ARGV[3]
local st = redis.call('HGET', KEYS[1], 's')
if not st or st == 'F' then return {'GONE'} end
local p
if st ~= 'X' then
  local a = redis.call('GET', KEYS[2])
  if a then p = apurge(a) end
end
if not p then p = redis.call('HGET', KEYS[1], 'p') end
local n = tonumber(p) or 0
if n == 0 or n > tonumber(ARGV[1]) then return {'KEEP', p} end
local b = redis.call('HGET', KEYS[1], 'b')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
-- A pending record's hash may still name the live record of its source.
if st ~= 'P' then delCopy(b) end
return {'DELETED', b}
`)

// snapshot reads a subject's index with every member's record and
// activity. KEYS: index. ARGV: 1 home prefix. Returns a flat list of
// (handle, state, version, bytes, source, activity).
var luaSnapshot = rueidis.NewLuaScriptReadOnly(`
local out = {}
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. 'r:' .. h, 's', 'v', 'b', 'o')
  if f[1] then
    local a = redis.call('GET', ARGV[1] .. 'a:' .. h) or ''
    table.insert(out, h); table.insert(out, f[1]); table.insert(out, f[2] or '')
    table.insert(out, f[3] or ''); table.insert(out, f[4] or ''); table.insert(out, a)
  end
end
return out
`)

// putValue replaces a KVStore value by compare-and-swap on its version.
// KEYS: key. ARGV: 1 expected version, 2 new version, 3 value.
var luaPutValue = rueidis.NewLuaScript(`
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return 'CONFLICT' end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'b', ARGV[3])
return 'OK'
`)

// follow reads a session in one round trip: it resolves a token pointer (or
// starts at a handle's locator), follows forward stubs and returns the home
// it reaches with record fields and activity. It computes the keys it
// reads, which only a single Redis server allows, so it is used only
// outside Cluster mode (see doc.go).
// KEYS: pointer key, or the locator record key. ARGV: 1 key prefix,
// 2 max hops, 3 handle and 4 locator tag when KEYS[1] is a locator ("" for
// a pointer). Returns {} for a missing pointer, {pointer} for one that does
// not parse, or {pointer, tag, state, version, bytes, source, activity}.
var luaFollow = rueidis.NewLuaScriptReadOnly(`
local ptr, handle, tag = '', ARGV[3], ARGV[4]
if handle == '' then
  ptr = redis.call('GET', KEYS[1])
  if not ptr then return {} end
  local c = string.find(ptr, ':', 1, true)
  local n = c and tonumber(string.sub(ptr, 1, c - 1))
  if not n or n <= 0 or c + n >= #ptr then return {ptr} end
  handle, tag = string.sub(ptr, c + 1, c + n), string.sub(ptr, c + n + 1)
end
for _ = 1, tonumber(ARGV[2]) do
  local home = ARGV[1] .. '{' .. tag .. '}:'
  local f = redis.call('HMGET', home .. 'r:' .. handle, 's', 'v', 'b', 'o')
  if f[1] ~= 'F' then
    local a = ''
    if f[1] then a = redis.call('GET', home .. 'a:' .. handle) or '' end
    return {ptr, tag, f[1] or '', f[2] or '', f[3] or '', f[4] or '', a}
  end
  tag = f[3] or ''
end
return {ptr, tag, 'F', '', tag, '', ''}
`)

// hashFrom and hashTo delimit the token hash in encoded record bytes, as
// 1-based Lua string positions.
var (
	hashFrom = strconv.Itoa(sessionkit.EncodedTokenHashOffset + 1)
	hashTo   = strconv.Itoa(sessionkit.EncodedTokenHashOffset + len(sessionkit.TokenHash{}))
)
