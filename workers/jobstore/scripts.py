"""The job store's state changes, each one Lua script so that a cancel, a worker starting and a
worker finishing cannot interleave badly, and so that per-state counters stay exact.

Every script touches the keys of one hash tag only — the job's and its tenant's (see
``keys``) — so each runs atomically on Redis Cluster too. The scripts that change a job's state
take the same first five keys: the record, the tenant's ``current`` counters, its ``entered``
counters, its ``active`` hash and the job's events stream."""

# Shared by transitions: move the job in KEYS[1] from `cur` to `to`, keep the tenant's counters
# (KEYS[2], KEYS[3]) and active set (KEYS[4]) exact.
_LUA_MOVE = """
local function move(cur, to, now)
  redis.call('HSET', KEYS[1], 'status', to, 'updated_at', now)
  if cur ~= to then
    local id = redis.call('HGET', KEYS[1], 'id')
    if cur == 'queued' or cur == 'running' then redis.call('HINCRBY', KEYS[2], cur, -1) end
    if to == 'queued' or to == 'running' then
      redis.call('HINCRBY', KEYS[2], to, 1)
      redis.call('HSET', KEYS[4], id, to)
    else
      redis.call('HDEL', KEYS[4], id)
    end
    redis.call('HINCRBY', KEYS[3], to, 1)
  end
end
"""

# KEYS: record, current, entered, active, events, claim, index, seq
# ARGV: job_id, claim_ttl, record_ttl, force ('1'|'0'), now, now_ms, index_keep_ms,
#       max_active (0: no cap), field, value, ...
# The per-tenant cap on queued + running jobs is checked here, in the script that creates the
# job, so that simultaneous submissions cannot both pass it; an identical request joins its job
# (answered before the cap: joining adds no work). The index is trimmed here, on the only path
# that grows it, of entries created more than index_keep_ms ago (their record has surely
# expired); the tenant's stored-jobs cap is applied after, by EVICT_LUA.
SUBMIT_LUA = """
if ARGV[4] ~= '1' then
  local cur = redis.call('GET', KEYS[6])
  if cur then return {'existing', cur} end
end
local max_active = tonumber(ARGV[8])
if max_active > 0 then
  local n = redis.call('HLEN', KEYS[4])
  if n >= max_active then return {'full', tostring(n)} end
end
redis.call('SET', KEYS[6], ARGV[1], 'EX', tonumber(ARGV[2]))
local seq = redis.call('INCR', KEYS[8])
local now_ms = tonumber(ARGV[6])
local score = now_ms * 1000 + (seq % 1000)
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'seq', seq, 'deliveries', 0, unpack(fields))
redis.call('HSET', KEYS[1], 'status', 'queued', 'updated_at', ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[2], 'queued', 1)
redis.call('HINCRBY', KEYS[3], 'queued', 1)
redis.call('HSET', KEYS[4], ARGV[1], 'queued')
redis.call('ZADD', KEYS[7], score, ARGV[1])
local oldest = string.format('%.0f', (now_ms - tonumber(ARGV[7])) * 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. oldest)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'queued'}))
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[3]))
return {'created', ARGV[1]}
"""

# KEYS: record, current, entered, active, events, claim (or the job's never-written no-claim key)
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
move(cur, ARGV[2], ARGV[3])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = ARGV[2]}))
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[5], ttl)
end
if redis.call('GET', KEYS[6]) == ARGV[7] then
  if ARGV[5] == '1' then redis.call('DEL', KEYS[6])
  elseif tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[6], tonumber(ARGV[6])) end
end
return {'ok', cur}
"""

# KEYS: record, current, entered, active, events
# ARGV: max_deliveries, now, worker, pid, generation (of the message), boot id
# ``boot`` names the worker incarnation (a fresh id per process start): the reaper takes only
# that incarnation's heartbeat as proof that the job is alive, so a worker restarted under the
# same name does not keep its predecessor's jobs "running". (The caller adds the job to the
# incarnation's job set before this script: that set is in another slot, and only a hint.)
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
move(cur, 'running', ARGV[2])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'running', delivery = n}))
return {'run', tostring(n)}
"""

# KEYS: record, current, entered, active, events
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
move(cur, 'queued', ARGV[2])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'queued', reason = ARGV[3]}))
return {'ok', tostring(n - 1)}
"""

# KEYS: record, current, entered, active, events, claim (or the no-claim key), cancel flag
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
  move(cur, 'cancelled', ARGV[1])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', 2000, '*', 'event', 'status',
             'data', cjson.encode({status = 'cancelled'}))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[2]))
  if redis.call('GET', KEYS[6]) == ARGV[4] then redis.call('DEL', KEYS[6]) end
  return {'cancelled', cur}
end
if cur == 'running' then
  redis.call('SET', KEYS[7], '1', 'EX', tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return {'requested', cur}
end
return {cur, cur}
"""

# KEYS: record, current, entered, active, events, claim (or the no-claim key)
# ARGV: worker hostname, now, result_ttl, job_id, problem JSON, max_deliveries, boot id
# For a running job whose worker incarnation stopped beating (the caller has just seen its
# heartbeat key gone — that key is in another slot; an incarnation never beats again once its
# process is gone, and one that was only paused is refused by the generation below). It would
# otherwise show "running" until the broker's visibility timeout (over an hour) restores its
# message. Instead it goes back to "queued" under a new generation, and the caller publishes a
# new message for that generation at once; the delivery the lost worker used stays counted, so a
# job that keeps killing whole workers still fails after max_deliveries — then it is failed here
# (with ``problem``), freeing its claim. Guarded by the status, the worker hostname and the boot
# id, so a job that another delivery has since picked up is left alone. The old message, when
# the broker restores it, is older than the record's generation: BEGIN_LUA skips it.
REAP_LUA = _LUA_MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if cur ~= 'running' then return {'refused', cur or ''} end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return {'refused', 'moved'} end
if (redis.call('HGET', KEYS[1], 'boot') or ARGV[1]) ~= ARGV[7] then
  return {'refused', 'moved'}
end
local n = tonumber(redis.call('HGET', KEYS[1], 'deliveries') or '0')
if n < tonumber(ARGV[6]) then
  local gen = redis.call('HINCRBY', KEYS[1], 'generation', 1)
  redis.call('HDEL', KEYS[1], 'worker', 'pid', 'boot')
  move(cur, 'queued', ARGV[2])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', 2000, '*', 'event', 'status',
             'data', cjson.encode({status = 'queued', reason = 'worker-lost'}))
  return {'requeued', tostring(gen)}
end
redis.call('HSET', KEYS[1], 'problem', ARGV[5], 'finished_at', ARGV[2])
move(cur, 'failed', ARGV[2])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'failed'}))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[3]))
if redis.call('GET', KEYS[6]) == ARGV[4] then redis.call('DEL', KEYS[6]) end
return {'lost', tostring(n)}
"""

# KEYS: record, events; ARGV: the generation the caller found the job under, now
# For a queued job whose message the broker no longer holds (Redis transport: a message taken off
# its list by a BRPOP whose reply was lost with the connection is nowhere): a new generation, to
# be published at once by the caller. Guarded by the status and the generation, so that of two
# API processes that both saw the loss only one publishes, and a job that started meanwhile is
# left alone. Should the old message turn up after all, BEGIN_LUA skips it as stale.
REPUBLISH_LUA = """
local cur = redis.call('HGET', KEYS[1], 'status')
if cur ~= 'queued' then return {'refused', cur or ''} end
if tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') ~= tonumber(ARGV[1]) then
  return {'refused', 'superseded'}
end
local gen = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'event', 'status',
           'data', cjson.encode({status = 'queued', reason = 'message-lost'}))
return {'ok', tostring(gen)}
"""

# KEYS: record, events, cancel flag, index, claim (or the no-claim key); ARGV: job_id
# The per-tenant cap on stored jobs: the caller walks the tenant's index oldest first and evicts
# finished jobs (or index entries whose record is gone) until the tenant is within its cap. A job
# that is queued or running is never evicted (the active cap bounds those).
EVICT_LUA = """
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == 'queued' or cur == 'running' then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
return redis.call('ZREM', KEYS[4], ARGV[1])
"""

# KEYS: record, current, active; ARGV: job_id
# A queued or running record can expire (after the active TTL, e.g. a message the broker lost):
# its entry in the tenant's active set and counters is dropped here, so the cap and the counters
# stay exact. Run when a submission finds the tenant full.
FORGET_EXPIRED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local s = redis.call('HGET', KEYS[3], ARGV[1])
if not s then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[2], s, -1)
return 1
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
