//! The Lua scripts that make every multi-key change atomic on the Redis server: code
//! redemption, refresh rotation with reuse detection, revocation and issuance.
//!
//! Every script but the rate limit works on one token family. It gets the family's key
//! prefix (`<f>` in [`super::keys`]) as `ARGV[1]` and the invalidation channel as
//! `ARGV[2]`, and returns an array whose first element is a status word; scripts that
//! kill access tokens also return their digests (so the caller can drop them from its
//! local cache at once) and PUBLISH them on the channel for the other replicas, in the
//! same atomic step. Every key a script touches is under `ARGV[1]`, so on Redis
//! Cluster all of them are in the slot of the declared `KEYS`.

use redis::Script;

/// Shared Lua helpers, prepended to each script.
const PRELUDE: &str = r#"
local P = ARGV[1]
local CHANNEL = ARGV[2]
-- A revoked family refuses new members for this long: covers a token request that
-- races the replay of its own code, or a rotation racing a reuse detection.
local REVOKED_MARKER_MS = 600000

local function family_key(fam) return P .. 'fam:' .. fam end

local function revoke_family(fam)
  local fkey = family_key(fam)
  local removed = {}
  for _, m in ipairs(redis.call('SMEMBERS', fkey)) do
    local hex = string.sub(m, 3)
    if string.sub(m, 1, 1) == 'a' then
      redis.call('DEL', P .. 'at:' .. hex)
      removed[#removed + 1] = hex
    else
      redis.call('DEL', P .. 'rt:' .. hex)
    end
  end
  redis.call('DEL', fkey)
  redis.call('SET', P .. 'fam-revoked:' .. fam, '1', 'PX', REVOKED_MARKER_MS)
  return removed
end

local function announce(removed)
  if #removed > 0 then
    redis.call('PUBLISH', CHANNEL, table.concat(removed, ' '))
  end
end

-- Add a member to its family set; the set lives as long as its longest member
-- (ttl 0 = the member never expires).
local function join_family(fam, member, ttl)
  local fkey = family_key(fam)
  local cur = redis.call('PTTL', fkey)
  redis.call('SADD', fkey, member)
  if ttl == 0 then
    redis.call('PERSIST', fkey)
  elseif cur == -2 or (cur >= 0 and cur < ttl) then
    redis.call('PEXPIRE', fkey, ttl)
  end
end

local function put(key, value, ttl)
  if ttl == 0 then
    redis.call('SET', key, value)
  else
    redis.call('SET', key, value, 'PX', ttl)
  end
end

-- ARGV[base..base+6]: family, access hex, access json, access ttl,
-- refresh hex ('' = none), refresh json, refresh ttl.
local function issue_pair(base)
  local fam = ARGV[base]
  local ahex = ARGV[base + 1]
  local attl = tonumber(ARGV[base + 3])
  put(P .. 'at:' .. ahex, ARGV[base + 2], attl)
  join_family(fam, 'a:' .. ahex, attl)
  local rhex = ARGV[base + 4]
  if rhex ~= '' then
    local rttl = tonumber(ARGV[base + 6])
    put(P .. 'rt:' .. rhex, ARGV[base + 5], rttl)
    join_family(fam, 'r:' .. rhex, rttl)
  end
end

local function with_removed(head, removed)
  for _, hex in ipairs(removed) do head[#head + 1] = hex end
  return head
end
"#;

/// GCRA on the Redis server's clock (one clock for every replica).
/// KEYS: budget. ARGV: interval ms, tolerance ms. See `crate::ratelimit`.
const RATE_HIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then
  return {'limited', string.format('%d', ahead - tolerance)}
end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', new - now)
return {'allowed'}
"#;

/// KEYS: code. ARGV: prefix, channel, record JSON, family, lifetime ms.
const PUT_CODE: &str = r#"
redis.call('HSET', KEYS[1], 'rec', ARGV[3], 'fam', ARGV[4], 'life', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {'stored'}
"#;

/// KEYS: code, code-used. ARGV: prefix, channel.
const TAKE_CODE: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'rec', 'fam', 'life')
if h[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], h[2], 'PX', h[3])
  return {'redeemed', h[1]}
end
local fam = redis.call('GET', KEYS[2])
if fam then
  local removed = revoke_family(fam)
  announce(removed)
  return with_removed({'replayed', fam}, removed)
end
return {'unknown'}
"#;

/// KEYS: the family set. ARGV: prefix, channel, then the pair (see `issue_pair`).
const ISSUE: &str = r#"
if redis.call('EXISTS', P .. 'fam-revoked:' .. ARGV[3]) == 1 then
  return {'refused'}
end
issue_pair(3)
return {'issued'}
"#;

/// KEYS: old refresh, its rotated tombstone. ARGV: prefix, channel, old refresh hex,
/// tombstone lifetime for never-expiring tokens (ms), then the new pair (see
/// `issue_pair`).
const ROTATE: &str = r#"
local rec = redis.call('GET', KEYS[1])
if not rec then
  local fam = redis.call('GET', KEYS[2])
  if fam then
    local removed = revoke_family(fam)
    announce(removed)
    return with_removed({'reused', fam}, removed)
  end
  return {'unknown'}
end
local old = cjson.decode(rec)
local fam = old['family']
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = tonumber(ARGV[4]) end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], fam, 'PX', left)
local fkey = family_key(fam)
redis.call('SREM', fkey, 'r:' .. ARGV[3])
local removed = {}
local access = old['access']
if type(access) == 'string' then
  redis.call('DEL', P .. 'at:' .. access)
  redis.call('SREM', fkey, 'a:' .. access)
  removed[1] = access
end
if redis.call('EXISTS', P .. 'fam-revoked:' .. ARGV[5]) == 0 then
  issue_pair(5)
end
announce(removed)
return with_removed({'rotated', fam}, removed)
"#;

/// KEYS: access key, refresh key of the same digest. ARGV: prefix, channel, digest hex.
const REVOKE: &str = r#"
local hex = ARGV[3]
local a = redis.call('GET', KEYS[1])
if a then
  local rec = cjson.decode(a)
  local fkey = family_key(rec['family'])
  redis.call('DEL', KEYS[1])
  redis.call('SREM', fkey, 'a:' .. hex)
  local r = rec['refresh']
  if type(r) == 'string' then
    redis.call('DEL', P .. 'rt:' .. r)
    redis.call('SREM', fkey, 'r:' .. r)
  end
  announce({hex})
  return {'revoked', rec['family'], hex}
end
local t = redis.call('GET', KEYS[2])
if t then
  local rec = cjson.decode(t)
  local fkey = family_key(rec['family'])
  redis.call('DEL', KEYS[2])
  redis.call('SREM', fkey, 'r:' .. hex)
  local acc = rec['access']
  redis.call('DEL', P .. 'at:' .. acc)
  redis.call('SREM', fkey, 'a:' .. acc)
  announce({acc})
  return {'revoked', rec['family'], acc}
end
return {'unknown'}
"#;

/// KEYS: family set. ARGV: prefix, channel, family.
const REVOKE_FAMILY: &str = r#"
local removed = revoke_family(ARGV[3])
announce(removed)
return with_removed({'revoked', ARGV[3]}, removed)
"#;

/// All scripts, hashed once.
pub struct Scripts {
    pub put_code: Script,
    pub take_code: Script,
    pub issue: Script,
    pub rotate: Script,
    pub revoke: Script,
    pub revoke_family: Script,
    pub rate_hit: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            put_code: with_prelude(PUT_CODE),
            take_code: with_prelude(TAKE_CODE),
            issue: with_prelude(ISSUE),
            rotate: with_prelude(ROTATE),
            revoke: with_prelude(REVOKE),
            revoke_family: with_prelude(REVOKE_FAMILY),
            rate_hit: Script::new(RATE_HIT),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
