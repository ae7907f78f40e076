-- policyengine's governor steps on one key's state, atomically on the server.
--
-- The same steps as policyengine/_governor/_steps.py (and the _limiter,
-- _breaker, _budget and _sticky modules it calls), written again in Lua; a
-- test drives both side by side. One key (a hash) per call, so every key a
-- script touches shares its hash tag (Redis Cluster); the time is the
-- server's (TIME), so every process agrees on it; every write renews the
-- key's TTL.
--
-- KEYS[1]  the key's hash
-- ARGV     op ("admit" | "settle" | "cancel"), ttl_ms, now ("": the server's
--          TIME), then the op's arguments (policyengine/redis.py builds them)

local INF = 1e300

local key = KEYS[1]
local op = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end

-- ---------------------------------------------------------------- the state
local FIELDS = {
  'l_rem', 'l_reset', 'l_limit', 'l_span', 'l_longest', 'l_next', 'l_block',
  'l_sent', 'l_read', 'l_since', 'l_rate', 'l_rate_at', 'l_cap', 'l_cap_at',
  'b_known', 'b_fail', 'b_open', 'b_for', 'b_probe', 'b_closed',
  'g_tok', 's_until',
  'l_cap_seq',  -- last: a state packed before it was added reads on unchanged
  'l_ok', 'l_ok_at',
}
local DEFAULTS = {
  l_rem = INF, l_reset = 0, l_limit = INF, l_span = 0, l_longest = 0, l_next = 0,
  l_block = 0, l_sent = 0, l_read = -1, l_since = 0, l_rate = 0, l_rate_at = 0,
  l_cap = 0, l_cap_at = 0,
  b_known = 0, b_fail = 0, b_open = 0, b_for = 0, b_probe = -INF, b_closed = 0,
  g_tok = -1, s_until = 0,
  l_cap_seq = 0, l_ok = 0, l_ok_at = 0,
}
-- The numbers live packed in one field ('v', MessagePack: doubles exactly);
-- the remembered failures in their own ('s_blob', 'o_blob').
local s = {}
local packed = redis.call('HGET', key, 'v')
local ok, values = false, nil
if packed then ok, values = pcall(cmsgpack.unpack, packed) end
if not ok or type(values) ~= 'table' then values = {} end
for i, name in ipairs(FIELDS) do
  local v = tonumber(values[i])
  if v == nil or v ~= v then v = DEFAULTS[name] end  -- absent, or garbage: the default
  s[name] = v
end

local function save(extra)
  local out = {}
  for i, name in ipairs(FIELDS) do out[i] = s[name] end
  local args = {'v', cmsgpack.pack(out)}
  for k, v in pairs(extra or {}) do
    args[#args + 1] = k
    args[#args + 1] = v
  end
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, ttl_ms)
end

local function num(i) return tonumber(ARGV[i]) end
local function flag(i) return ARGV[i] == '1' end
local function opt(i) if ARGV[i] == '' then return nil end return tonumber(ARGV[i]) end
local function f(v) return string.format('%.17g', v) end
local function finite(v) return v > -INF / 2 and v < INF / 2 end

-- ---------------------------------------------------------------- limiter
local SPREAD_FRACTION, SPREAD_MIN, SPREAD_MAX = 0.1, 0.05, 1.0
local RATE_DECREASE, RATE_GROWTH, MIN_RATE, RATE_HEADROOM, RATE_WINDOW = 0.7, 1.1, 0.5, 8.0, 1.0
local RATE_UNDO_MAX = 60  -- seconds of a wait whose decay is undone at most
local RESET_MARGIN, MAX_RENEWALS = 0.005, 64

local function spread(wait)
  return math.min(SPREAD_MAX, math.max(SPREAD_MIN, SPREAD_FRACTION * wait))
end

local function cap_now()
  if s.l_cap <= 0 then return 0 end
  local grown = s.l_cap * RATE_GROWTH ^ math.min(60, math.max(0, now - s.l_cap_at))
  if grown > RATE_HEADROOM * math.max(s.l_rate, MIN_RATE) then
    s.l_cap = 0
    return 0
  end
  return grown
end

local function allowance_after(resets)
  local left = s.l_rem
  for n = 0, resets - 1 do
    if n == 0 and s.l_since ~= 0 then
      left = s.l_limit - s.l_since
    else
      left = math.min(s.l_limit, left + s.l_limit)
    end
  end
  return left
end

local function catch_up(at)
  if s.l_reset == 0 or at < s.l_reset + RESET_MARGIN then return end
  local spans = 0
  if s.l_span > 0 then
    spans = math.floor(math.min(MAX_RENEWALS, (at - s.l_reset - RESET_MARGIN) / s.l_span + 1e-9))
  end
  s.l_rem = allowance_after(1 + math.max(0, spans))
  s.l_since = 0
  if not (s.l_span > 0 and finite(s.l_limit)) then
    s.l_reset = 0
  elseif spans >= MAX_RENEWALS then
    s.l_reset = at + s.l_span
  else
    s.l_reset = s.l_reset + (1 + math.max(0, spans)) * s.l_span
  end
end

-- returns the slot time and the send's number (-1: not reserved, ask again then)
local function reserve(jitter)
  catch_up(now)
  local at = math.max(now, s.l_next)
  local released = 0
  if s.l_block >= at then
    released, at = s.l_block - now, s.l_block
  end
  if s.l_reset ~= 0 and (s.l_rem < 1 or at >= s.l_reset + RESET_MARGIN) then
    local edge = math.max(at, s.l_reset + RESET_MARGIN)
    return edge + jitter * spread(edge - now), -1
  end
  if released > 0 then at = at + jitter * spread(released) end
  local interval = 0
  if s.l_reset > at and s.l_rem >= 1 and finite(s.l_rem) then
    interval = (s.l_reset - at) / s.l_rem
  end
  local cap = cap_now()
  if cap > 0 then interval = math.max(interval, 1 / cap) end
  if interval > 0 then s.l_next = at + interval end
  s.l_rem = s.l_rem - 1
  s.l_since = s.l_since + 1
  s.l_rate = s.l_rate * math.exp(-math.max(0, at - s.l_rate_at) / RATE_WINDOW) + 1 / RATE_WINDOW
  s.l_rate_at = math.max(s.l_rate_at, at)
  local seq = s.l_sent
  s.l_sent = s.l_sent + 1
  return at, seq
end

-- reading: {limit, remaining, reset_after, window} (nil fields when not stated)
local function observe(seq, req, tok, rejected, server_wait)
  local told_before = s.l_block > 0 and seq >= s.l_cap_seq
  if not rejected then
    s.l_ok = s.l_ok * math.exp(-math.max(0, now - s.l_ok_at) / RATE_WINDOW) + 1 / RATE_WINDOW
    s.l_ok_at = math.max(s.l_ok_at, now)
  end
  if server_wait ~= nil and rejected then
    s.l_block = math.max(s.l_block, now + server_wait)
  end
  local read = req ~= nil or tok ~= nil
  if read and seq > s.l_read then
    s.l_read = seq
    local later = s.l_sent - seq - 1
    s.l_since = later
    if req ~= nil then
      if req.limit ~= nil then s.l_limit = req.limit end
      s.l_rem = req.remaining - later
      if req.window ~= nil then s.l_span = req.window end
      if req.reset ~= nil then
        s.l_reset = now + req.reset
        s.l_longest = math.max(s.l_longest, req.reset)
        local used = s.l_limit - req.remaining
        if req.window == nil and finite(s.l_limit) then
          local scaled = 0
          if used >= 1 then scaled = req.reset * s.l_limit / used end
          s.l_span = math.max(s.l_longest, scaled)
        end
      elseif req.window ~= nil and s.l_reset <= now then
        s.l_reset = now + req.window
      end
    end
    if tok ~= nil and tok.remaining < 1 and tok.reset ~= nil then
      s.l_block = math.max(s.l_block, now + tok.reset)
    end
  end
  if rejected and (server_wait == nil or told_before) then
    if req == nil or req.remaining >= 1 or req.reset == nil then
      local sent = s.l_rate
      if server_wait ~= nil then  -- as of now, not of the slots taken after the wait
        sent = s.l_rate * math.exp(math.min(server_wait, math.max(0, s.l_rate_at - now), RATE_UNDO_MAX) / RATE_WINDOW)
      end
      local lowered = RATE_DECREASE * math.max(sent, cap_now())
      local accepted = s.l_ok * math.exp(-math.max(0, now - s.l_ok_at) / RATE_WINDOW)
      if accepted > 0 then lowered = math.min(lowered, accepted) end
      s.l_cap = math.max(MIN_RATE, lowered)
      s.l_cap_at = now
      s.l_cap_seq = s.l_sent
    end
  end
end

-- ---------------------------------------------------------------- breaker
local PROBE_LEASE = 30.0

-- returns kind ("go" | "probe" | "wait"), until, for_probe
local function gate(b_enabled, first_contact)
  local probing = now - s.b_probe < PROBE_LEASE
  if s.b_open > 0 and b_enabled then
    if now < s.b_open then return 'wait', s.b_open, false end
    if probing then return 'wait', s.b_probe + PROBE_LEASE, true end
    s.b_probe = now
    return 'probe', 0, false
  end
  if s.b_known == 0 and first_contact > 0 then
    if now - s.b_probe < first_contact then
      return 'wait', s.b_probe + first_contact, true
    end
    if s.b_probe == -INF then
      s.b_probe = now
      return 'probe', 0, false
    end
  end
  return 'go', 0, false
end

-- returns the transition ('' | 'opened' | 'reopened' | 'closed')
local function breaker_observe(failed, probe, b_enabled, b_failures, open_for, max_open_for)
  s.b_known = 1
  if probe then s.b_probe = -INF end
  if not failed then
    s.b_fail = 0
    if s.b_open > 0 and (probe or now >= s.b_open) then
      s.b_open, s.b_for, s.b_closed = 0, 0, now
      return 'closed'
    end
    return ''
  end
  s.b_fail = s.b_fail + 1
  if not b_enabled then return '' end
  if s.b_open > 0 then
    if probe or now >= s.b_open then
      s.b_for = math.min(max_open_for, math.max(open_for, s.b_for * 2))
      s.b_open = now + s.b_for
      return 'reopened'
    end
    return ''
  end
  if s.b_fail >= b_failures then
    s.b_for = open_for
    s.b_open = now + s.b_for
    return 'opened'
  end
  return ''
end

-- ---------------------------------------------------------------- budget
local function tokens(burst)
  if s.g_tok < 0 then s.g_tok = burst end
  return s.g_tok
end

-- ---------------------------------------------------------------- the ops
if op == 'admit' then
  -- ARGV: 4 retry, 5 deadline_in, 6 jitter, 7 first_contact, 8 breaker enabled,
  --       9 limiter enabled, 10 budget ratio, 11 budget burst
  local retry, deadline_in, jitter = flag(4), num(5), num(6)
  local first_contact, b_enabled, l_enabled = num(7), flag(8), flag(9)
  local ratio, burst = num(10), num(11)
  if s.s_until > now then
    local blob = redis.call('HGET', key, 's_blob') or ''
    save()
    return {'sticky', f(s.s_until - now), '-1', '0', '0', '', blob, '0', '0'}
  end
  if s.s_until ~= 0 then s.s_until = 0 ; redis.call('HDEL', key, 's_blob') end
  local kind, until_, for_probe = gate(b_enabled, first_contact)
  if kind == 'wait' then
    local wait = until_ - now
    local opened = s.b_open > 0
    if for_probe then
      if deadline_in <= 0 then
        local blob = redis.call('HGET', key, 'o_blob') or ''
        save()
        return {'circuit', '0', '-1', '0', '0', '', blob, f(s.b_fail), '0'}
      end
      local why = 'first'
      if opened then why = 'probe' end
      save()
      return {'hold', f(math.min(wait, deadline_in)), '-1', '0', '1', why, '', '0', '0'}
    end
    if wait > deadline_in then
      local blob = redis.call('HGET', key, 'o_blob') or ''
      save()
      return {'circuit', f(wait), '-1', '0', '0', '', blob, f(s.b_fail), '0'}
    end
    save()
    return {'hold', f(wait), '-1', '0', '0', 'circuit', '', '0', '0'}
  end
  local probe = kind == 'probe'
  local probe_flag = '0'
  if probe then probe_flag = '1' end
  if not retry then s.g_tok = math.min(burst, tokens(burst) + ratio) end
  if not l_enabled then
    save()
    return {'go', '0', '-1', probe_flag, '0', '', '', '0', '0'}
  end
  local at, seq = reserve(jitter)
  if at - now > deadline_in or seq == -1 then
    if seq ~= -1 then s.l_rem = s.l_rem + 1 end
    if probe then s.b_probe = -INF end
    save()
    if at - now > deadline_in then
      return {'slot', f(at - now), '-1', '0', '0', '', '', '0', f(s.l_rem + 1)}
    end
    return {'hold', f(at - now), '-1', '0', '0', 'spent', '', '0', '0'}
  end
  save()
  return {'go', f(at - now), f(seq), probe_flag, '0', '', '', '0', '0'}
end

if op == 'settle' then
  -- ARGV: 4 seq ('' = the latest), 5 probe, 6 failed, 7 rejected, 8 server_wait,
  --       9-12 requests (limit, remaining, reset, window; all '' when not read),
  --       13-14 tokens (remaining, reset), 15 sticky_for ('' = not sticky),
  --       16 retrying, 17 failure blob, 18 limiter enabled, 19 breaker enabled,
  --       20 failures, 21 open_for, 22 max_open_for, 23 budget enabled, 24 burst
  local probe, failed, rejected = flag(5), flag(6), flag(7)
  local server_wait = opt(8)
  local req = nil
  if ARGV[10] ~= '' then
    req = {limit = opt(9), remaining = num(10), reset = opt(11), window = opt(12)}
  end
  local tok = nil
  if ARGV[13] ~= '' then tok = {remaining = num(13), reset = opt(14)} end
  local sticky_for, retrying, blob = opt(15), flag(16), ARGV[17]
  local extra = {}
  if flag(18) then
    local seq = opt(4)
    if seq == nil then seq = s.l_sent - 1 end
    if seq >= 0 then observe(seq, req, tok, rejected, server_wait) end
  end
  local transition = breaker_observe(failed, probe, flag(19), num(20), num(21), num(22))
  if transition == 'opened' or transition == 'reopened' then extra['o_blob'] = blob end
  if sticky_for ~= nil then
    s.s_until = now + sticky_for
    extra['s_blob'] = blob
  end
  local over = '0'
  if retrying and s.b_open == 0 and flag(23) then
    if tokens(num(24)) >= 1 then s.g_tok = s.g_tok - 1 else over = '1' end
  end
  save(extra)
  return {transition, over, f(s.b_for)}
end

if op == 'cancel' then
  if flag(4) then s.b_probe = -INF end
  save()
  return {}
end

return redis.error_reply('policyengine: unknown op ' .. tostring(op))
