"""The job store's state changes, each one Lua script so that a cancel, a worker starting and a
worker finishing cannot interleave badly, and so that per-state counters stay exact."""

# Shared by transitions: move `cur` -> `to`, keep the counters exact, append a status event.
_LUA_MOVE = """
local function move(rec, cur_key, ent_key, ev_key, cur, to, now)
  redis.call('HSET', rec, 'status', to, 'updated_at', now)
  if cur ~= to then
    if cur == 'queued' or cur == 'running' then redis.call('HINCRBY', cur_key, cur, -1) end
    if to == 'queued' or to == 'running' then redis.call('HINCRBY', cur_key, to, 1) end
    redis.call('HINCRBY', ent_key, to, 1)
  end
end
"""

# KEYS: claim, record, index, seq, stats_current, stats_entered, events
# ARGV: job_id, claim_ttl, record_ttl, force ('1'|'0'), now, now_ms, index_keep_ms, index_max,
#       field, value, ...
# The index is trimmed here, on the only path that grows it, so it stays bounded without a
# janitor: entries created more than index_keep_ms ago (their record has surely expired) and
# everything beyond the newest index_max entries.
SUBMIT_LUA = _LUA_MOVE + """
if ARGV[4] ~= '1' then
  local cur = redis.call('GET', KEYS[1])
  if cur then return {'existing', cur} end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
local seq = redis.call('INCR', KEYS[4])
local now_ms = tonumber(ARGV[6])
local score = now_ms * 1000 + (seq % 1000)
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'seq', seq, 'deliveries', 0, unpack(fields))
redis.call('HINCRBY', KEYS[5], 'queued', 1)
redis.call('HINCRBY', KEYS[6], 'queued', 1)
redis.call('HSET', KEYS[2], 'status', 'queued', 'updated_at', ARGV[5])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('ZADD', KEYS[3], score, ARGV[1])
local oldest = string.format('%.0f', (now_ms - tonumber(ARGV[7])) * 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. oldest)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[8]) + 1))
redis.call('XADD', KEYS[7], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'queued'}))
redis.call('EXPIRE', KEYS[7], tonumber(ARGV[3]))
return {'created', ARGV[1]}
"""

# KEYS: record, stats_current, stats_entered, events, claim (or '')
# ARGV: allowed_from (comma list), to, now, ttl (0: keep), release_claim ('1'|'0'),
#       claim_ttl (0: keep), job_id, generation ('': any), field, value, ...
# A writer that names its generation (a worker, for the delivery it runs) is refused once the job
# has been handed to a newer one (REAP_LUA): a run that was wrongly taken for lost must not
# overwrite the record of the run that replaced it.
TRANSITION_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', ''} end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return {'refused', cur} end
if ARGV[8] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
    ~= tonumber(ARGV[8]) then
  return {'refused', 'superseded'}
end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, ARGV[2], ARGV[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = ARGV[2]}))
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[4], ttl)
end
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[7] then
  if ARGV[5] == '1' then redis.call('DEL', KEYS[5])
  elseif tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[6])) end
end
return {'ok', cur}
"""

# KEYS: record, stats_current, stats_entered, events, the incarnation's job set
# ARGV: max_deliveries, now, worker, pid, generation (of the message), boot id, set ttl
# ``boot`` names the worker incarnation (a fresh id per process start): the reaper takes only
# that incarnation's heartbeat as proof that the job is alive, so a worker restarted under the
# same name does not keep its predecessor's jobs "running".
# A message older than the record's generation is the original of a job that REAP_LUA re-queued
# (the broker restores it after its visibility timeout): the job has a newer message, skip it.
BEGIN_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', '0'} end
if cur ~= 'queued' and cur ~= 'running' then return {'skip', cur} end
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') then
  return {'skip', 'stale'}
end
local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if n > tonumber(ARGV[1]) then return {'exhausted', tostring(n)} end
redis.call('HSET', KEYS[1], 'started_at', ARGV[2], 'worker', ARGV[3], 'pid', ARGV[4],
           'boot', ARGV[6])
redis.call('HSETNX', KEYS[1], 'first_started_at', ARGV[2])
redis.call('SADD', KEYS[5], redis.call('HGET', KEYS[1], 'id'))
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[7]))
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'running', ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'running', delivery = n}))
return {'run', tostring(n)}
"""

# KEYS: record, stats_current, stats_entered, events
# ARGV: delivery, now, reason
# A worker that is shutting down hands its running job back: running -> queued, and the delivery
# it used is not counted (the job did not fail its worker). Guarded by the status and by the
# delivery number, so a stale worker cannot requeue a job that another delivery already owns.
REQUEUE_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', ''} end
if cur ~= 'running' then return {'refused', cur} end
local n = tonumber(redis.call('HGET', KEYS[1], 'deliveries') or '0')
if n ~= tonumber(ARGV[1]) then return {'refused', 'delivery ' .. tostring(n)} end
redis.call('HINCRBY', KEYS[1], 'deliveries', -1)
redis.call('HDEL', KEYS[1], 'worker', 'pid', 'boot')
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'queued', ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'queued', reason = ARGV[3]}))
return {'ok', tostring(n - 1)}
"""

# KEYS: record, stats_current, stats_entered, events, claim (or ''), cancel flag
# ARGV: now, result_ttl, flag_ttl, job_id
# One script decides from the status it reads: a queued job is cancelled at once, a running one
# gets its flag, anything else is reported as is. Setting the flag in the same script means a job
# that finishes "in between" cannot be answered 202 (the old check-then-set had that window), and
# a record that has expired is never recreated by a late HSET.
CANCEL_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', ''} end
if cur == 'queued' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[1])
  move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'cancelled', ARGV[1])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
             'data', cjson.encode({status = 'cancelled'}))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[2]))
  if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[4] then redis.call('DEL', KEYS[5]) end
  return {'cancelled', cur}
end
if cur == 'running' then
  redis.call('SET', KEYS[6], '1', 'EX', tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return {'requested', cur}
end
return {cur, cur}
"""

# KEYS: record, stats_current, stats_entered, events, claim (or ''), the heartbeat key of the
#       incarnation that runs the job (worker:{boot})
# ARGV: worker hostname, now, result_ttl, job_id, problem JSON, max_deliveries, boot id
# A running job whose worker stopped beating (its machine or main process is gone: no drain, no
# requeue) would otherwise show "running" until the broker's visibility timeout (over an hour)
# restores its message. Instead it goes back to "queued" under a new generation, and the caller
# publishes a new message for that generation at once; the delivery the lost worker used stays
# counted, so a job that keeps killing whole workers still fails after max_deliveries — then it
# is failed here (with ``problem``), freeing its claim. Guarded by the status and by the worker
# hostname, so a job that another delivery has since picked up is left alone. The old message,
# when the broker restores it, is older than the record's generation: BEGIN_LUA skips it.
REAP_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if cur ~= 'running' then return {'refused', cur or ''} end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return {'refused', 'moved'} end
if (redis.call('HGET', KEYS[1], 'boot') or ARGV[1]) ~= ARGV[7] then
  return {'refused', 'moved'}
end
if redis.call('EXISTS', KEYS[6]) == 1 then return {'alive', ARGV[1]} end
local n = tonumber(redis.call('HGET', KEYS[1], 'deliveries') or '0')
if n < tonumber(ARGV[6]) then
  local gen = redis.call('HINCRBY', KEYS[1], 'generation', 1)
  redis.call('HDEL', KEYS[1], 'worker', 'pid', 'boot')
  move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'queued', ARGV[2])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
             'data', cjson.encode({status = 'queued', reason = 'worker-lost'}))
  return {'requeued', tostring(gen)}
end
redis.call('HSET', KEYS[1], 'problem', ARGV[5], 'finished_at', ARGV[2])
move(KEYS[1], KEYS[2], KEYS[3], KEYS[4], cur, 'failed', ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'failed'}))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[4] then redis.call('DEL', KEYS[5]) end
return {'lost', tostring(n)}
"""

# KEYS: record, events; ARGV: progress JSON, now
# Only while the record exists: a late progress write must not recreate an expired hash (it would
# then live forever, without a TTL and without the fields a job record needs).
PROGRESS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'updated_at', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'event', 'progress', 'data', ARGV[1])
return 1
"""

# KEYS: claim; ARGV: job_id — delete the claim only if it still belongs to this job.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
