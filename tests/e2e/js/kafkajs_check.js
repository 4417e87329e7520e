'use strict'
// End-to-end check of a Gregor broker with kafkajs 2.2.4 (pure JavaScript client; ApiVersions v2,
// Metadata v6, Produce v7, Fetch v11, ListOffsets v3, CreateTopics v3, DeleteTopics v1,
// FindCoordinator v2, JoinGroup v5, SyncGroup v3, Heartbeat v3, LeaveGroup v3, OffsetCommit v5,
// OffsetFetch v4, InitProducerId v1, DescribeConfigs v2, ListGroups v2, DescribeGroups v2,
// DeleteGroups v1).
//
//   node kafkajs_check.js 127.0.0.1:9092
//
// Prints one line per step and exits 0 when every check passed; on the first mismatch, error or
// timeout it prints what was expected and what came back, and exits non-zero.

const { Kafka, logLevel, Partitioners, CompressionTypes } = require('kafkajs')

const bootstrap = process.argv[2] || process.env.GREGOR_BOOTSTRAP
if (!bootstrap) {
  console.error('usage: node kafkajs_check.js HOST:PORT')
  process.exit(64)
}
const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 20000)
const TOTAL_TIMEOUT_MS = Number(process.env.TOTAL_TIMEOUT_MS || 100000)
const TS0 = 1700000000000
const suffix = `${process.pid}-${Date.now().toString(36)}`
const T3 = `kjs-three-${suffix}`
const T6 = `kjs-six-${suffix}`
const G1 = `kjs-single-${suffix}`
const G2 = `kjs-pair-${suffix}`

const t0 = Date.now()
let step = 'start'
const clients = []

class CheckFailed extends Error {}

function fail(msg) {
  throw new CheckFailed(`[${step}] ${msg}`)
}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) fail(`${what}: got ${a}, expected ${e}`)
}

function begin(name) {
  step = name
  console.log(`--- ${name} (+${Date.now() - t0} ms)`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor(pred, what, timeout = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeout
  let last
  while (Date.now() < deadline) {
    last = await pred()
    if (last) return last
    await sleep(50)
  }
  fail(`timed out after ${timeout} ms waiting for ${typeof what === 'function' ? what() : what}`)
}

function within(promise, what, timeout = STEP_TIMEOUT_MS) {
  let timer
  const expire = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`[${step}] ${what} did not finish within ${timeout} ms`)), timeout)
  })
  return Promise.race([promise, expire]).finally(() => clearTimeout(timer))
}

const kafka = new Kafka({
  clientId: 'e2e-kafkajs',
  brokers: [bootstrap],
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
  logLevel: process.env.KAFKAJS_LOG_LEVEL ? logLevel[process.env.KAFKAJS_LOG_LEVEL] : logLevel.WARN,
})

function track(client) {
  clients.push(client)
  return client
}

function groupConsumer(groupId) {
  return track(
    kafka.consumer({
      groupId,
      sessionTimeout: 10000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    })
  )
}

// Starts a group consumer; every message goes to `sink` as a plain object, and `state.assigned`
// follows the member's latest assignment of `topic` (from the GROUP_JOIN event).
async function startConsumer(consumer, topic, sink) {
  const state = { assigned: null, joins: 0 }
  consumer.on(consumer.events.GROUP_JOIN, e => {
    state.joins += 1
    state.assigned = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
  })
  consumer.on(consumer.events.CRASH, e => {
    sink.crashes.push(String(e.payload.error && e.payload.error.stack))
  })
  await within(consumer.connect(), 'consumer.connect()')
  await within(consumer.subscribe({ topics: [topic], fromBeginning: true }), 'consumer.subscribe()')
  await within(
    consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        const headers = {}
        for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v === null ? null : v.toString()
        sink.records.push({
          topic: t,
          partition,
          offset: Number(message.offset),
          key: message.key === null ? null : message.key.toString(),
          value: message.value === null ? null : message.value.toString(),
          timestamp: Number(message.timestamp),
          headers,
        })
      },
    }),
    'consumer.run()'
  )
  return state
}

function newSink() {
  return { records: [], crashes: [] }
}

function checkNoCrash(...sinks) {
  for (const s of sinks) if (s.crashes.length) fail(`consumer crashed: ${s.crashes.join('\n')}`)
}

async function committed(admin, groupId, topic) {
  const res = await within(admin.fetchOffsets({ groupId, topics: [topic] }), 'admin.fetchOffsets()')
  const parts = res.find(r => r.topic === topic).partitions
  return parts.slice().sort((a, b) => a.partition - b.partition).map(p => Number(p.offset))
}

async function waitCommitted(admin, groupId, topic, expected) {
  let last
  await waitFor(async () => {
    last = await committed(admin, groupId, topic)
    return JSON.stringify(last) === JSON.stringify(expected)
  }, () => `committed offsets of ${groupId} on ${topic} to be ${JSON.stringify(expected)} (last ${JSON.stringify(last)})`)
}

function sendResult(res) {
  return res
    .map(r => [r.topicName, r.partition, r.errorCode, Number(r.baseOffset)])
    .sort((a, b) => a[1] - b[1])
}

async function main() {
  console.log(`kafkajs against ${bootstrap}`)
  const admin = track(kafka.admin())

  begin('admin: connect, describe cluster')
  await within(admin.connect(), 'admin.connect()')
  const cluster = await within(admin.describeCluster(), 'admin.describeCluster()')
  const [host, port] = bootstrap.split(':')
  eq(cluster.brokers.map(b => [b.host, b.port]), [[host, Number(port)]], 'describeCluster brokers')
  eq(cluster.controller, cluster.brokers[0].nodeId, 'describeCluster controller')

  begin('admin: create topics')
  const created = await within(
    admin.createTopics({
      topics: [
        { topic: T3, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '86400000' }] },
        { topic: T6, numPartitions: 6, replicationFactor: 1 },
      ],
      waitForLeaders: true,
    }),
    'admin.createTopics()'
  )
  eq(created, true, 'createTopics of two new topics')
  const again = await within(admin.createTopics({ topics: [{ topic: T6, numPartitions: 6 }] }), 'admin.createTopics() again')
  eq(again, false, 'createTopics of an existing topic (TOPIC_ALREADY_EXISTS)')
  const listed = await within(admin.listTopics(), 'admin.listTopics()')
  eq([T3, T6].map(t => listed.includes(t)), [true, true], 'listTopics contains both new topics')
  const meta = await within(admin.fetchTopicMetadata({ topics: [T3, T6] }), 'admin.fetchTopicMetadata()')
  eq(
    meta.topics
      .map(t => [t.name, t.partitions.map(p => p.partitionId).sort((a, b) => a - b)])
      .sort((a, b) => (a[0] < b[0] ? -1 : 1)),
    [[T6, [0, 1, 2, 3, 4, 5]], [T3, [0, 1, 2]]].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
    'topic metadata partitions'
  )
  const configs = await within(
    admin.describeConfigs({ resources: [{ type: 2, name: T3, configNames: ['retention.ms'] }], includeSynonyms: false }),
    'admin.describeConfigs()'
  )
  eq(
    configs.resources.map(r => [r.errorCode, r.resourceName, r.configEntries.map(c => [c.configName, c.configValue])]),
    [[0, T3, [['retention.ms', '86400000']]]],
    'describeConfigs of retention.ms'
  )

  begin('idempotent producer: keys, headers, timestamps to 3 partitions')
  const producer = track(
    kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
  )
  await within(producer.connect(), 'producer.connect()')
  const msg = i => ({
    key: `k${i}`,
    value: `v${i}`,
    partition: i % 3,
    timestamp: String(TS0 + i),
    headers: { idx: `${i}`, kind: 'e2e' },
  })
  let res = await within(
    producer.send({ topic: T3, acks: -1, messages: Array.from({ length: 30 }, (_, i) => msg(i)) }),
    'producer.send()'
  )
  eq(sendResult(res), [[T3, 0, 0, 0], [T3, 1, 0, 0], [T3, 2, 0, 0]], 'first send: base offsets')
  res = await within(
    producer.send({ topic: T3, acks: -1, messages: Array.from({ length: 30 }, (_, i) => msg(30 + i)) }),
    'producer.send() again'
  )
  eq(sendResult(res), [[T3, 0, 0, 10], [T3, 1, 0, 10], [T3, 2, 0, 10]], 'second send: base offsets')
  const offs = await within(admin.fetchTopicOffsets(T3), 'admin.fetchTopicOffsets()')
  eq(
    offs.sort((a, b) => a.partition - b.partition).map(o => [o.partition, o.low, o.high, o.offset]),
    [[0, '0', '20', '20'], [1, '0', '20', '20'], [2, '0', '20', '20']],
    'topic offsets (low, high)'
  )
  const byTime = await within(admin.fetchTopicOffsetsByTimestamp(T3, TS0 + 31), 'admin.fetchTopicOffsetsByTimestamp()')
  // Partition p holds i = p, p+3, ... at offset floor(i/3): the first timestamp >= TS0+31 is
  // i = 33 (p0, offset 11), 31 (p1, offset 10), 32 (p2, offset 10).
  eq(
    byTime.sort((a, b) => a.partition - b.partition).map(o => [o.partition, o.offset]),
    [[0, '11'], [1, '10'], [2, '10']],
    'offsets by timestamp'
  )

  begin('one group consumer reads everything back and commits')
  const s1 = newSink()
  const c1 = groupConsumer(G1)
  await startConsumer(c1, T3, s1)
  await waitFor(() => s1.records.length >= 60, `60 records (have ${s1.records.length})`)
  await sleep(300)
  checkNoCrash(s1)
  eq(s1.records.length, 60, 'records consumed by the single consumer')
  for (let p = 0; p < 3; p++) {
    const got = s1.records.filter(r => r.partition === p)
    const want = Array.from({ length: 20 }, (_, o) => {
      const i = o * 3 + p
      return { topic: T3, partition: p, offset: o, key: `k${i}`, value: `v${i}`, timestamp: TS0 + i, headers: { idx: `${i}`, kind: 'e2e' } }
    })
    eq(got, want, `records of partition ${p}`)
  }
  await waitCommitted(admin, G1, T3, [20, 20, 20])
  await within(c1.disconnect(), 'consumer.disconnect()')

  begin('gzip and acks=0 produce, delete records, add partitions, alter configs')
  res = await within(
    producer.send({
      topic: T3,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: Array.from({ length: 20 }, (_, i) => ({ partition: 0, value: `g${i}` })),
    }),
    'producer.send(gzip)'
  )
  eq(sendResult(res), [[T3, 0, 0, 20]], 'gzip send: base offset')
  // acks=0 (a plain producer: the idempotent one refuses it) gets no answer; the next request on
  // the same connection must still get its own.
  const plain = track(kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }))
  await within(plain.connect(), 'producer.connect()')
  res = await within(plain.send({ topic: T3, acks: 0, messages: [{ partition: 1, value: 'zero' }] }), 'producer.send(acks=0)')
  eq(res, [], 'acks=0 send result')
  res = await within(plain.send({ topic: T3, acks: 1, messages: [{ partition: 1, value: 'one' }] }), 'producer.send(acks=1)')
  eq(sendResult(res), [[T3, 1, 0, 21]], 'send after acks=0: base offset')
  await within(plain.disconnect(), 'producer.disconnect()')
  await within(admin.deleteTopicRecords({ topic: T3, partitions: [{ partition: 0, offset: '30' }] }), 'admin.deleteTopicRecords()')
  // (kafkajs 2.2.4 resolves createPartitions with undefined, whatever its typings say; errors throw.)
  await within(admin.createPartitions({ topicPartitions: [{ topic: T3, count: 4 }] }), 'admin.createPartitions()')
  const offs2 = await within(admin.fetchTopicOffsets(T3), 'admin.fetchTopicOffsets()')
  eq(
    offs2.sort((a, b) => a.partition - b.partition).map(o => [o.partition, o.low, o.high]),
    [[0, '30', '40'], [1, '0', '22'], [2, '0', '20'], [3, '0', '0']],
    'topic offsets after delete records and a new partition'
  )
  const altered = await within(
    admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: T3, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] }),
    'admin.alterConfigs()'
  )
  eq(altered.resources.map(r => [r.errorCode, r.resourceName]), [[0, T3]], 'alterConfigs')
  const configs2 = await within(
    admin.describeConfigs({ resources: [{ type: 2, name: T3, configNames: ['retention.ms'] }], includeSynonyms: false }),
    'admin.describeConfigs()'
  )
  eq(configs2.resources[0].configEntries.map(c => [c.configName, c.configValue]), [['retention.ms', '3600000']], 'retention.ms after alterConfigs')

  begin('the group resumes: below the log start it restarts at the log start')
  // G1 committed 20 on every partition; partition 0 now starts at 30 (OFFSET_OUT_OF_RANGE, then
  // earliest), partition 1 has two new records, partition 3 is new and empty.
  const s1b = newSink()
  const c1b = groupConsumer(G1)
  await startConsumer(c1b, T3, s1b)
  await waitFor(() => s1b.records.length >= 12, () => `12 records (have ${s1b.records.length})`)
  await sleep(500)
  checkNoCrash(s1b)
  eq(
    s1b.records.map(r => [r.partition, r.offset, r.value]).sort((a, b) => a[0] - b[0] || a[1] - b[1]),
    [...Array.from({ length: 10 }, (_, i) => [0, 30 + i, `g${10 + i}`]), [1, 20, 'zero'], [1, 21, 'one']],
    'records after the resume'
  )
  await waitCommitted(admin, G1, T3, [40, 22, 20, -1])
  await within(c1b.disconnect(), 'consumer.disconnect()')

  begin('two consumers in one group split 6 partitions')
  const sa = newSink()
  const sb = newSink()
  const ca = groupConsumer(G2)
  const cb = groupConsumer(G2)
  const [sta, stb] = await Promise.all([startConsumer(ca, T6, sa), startConsumer(cb, T6, sb)])
  const settled = () =>
    sta.assigned &&
    stb.assigned &&
    sta.assigned.length > 0 &&
    stb.assigned.length > 0 &&
    JSON.stringify([...sta.assigned, ...stb.assigned].sort((a, b) => a - b)) === JSON.stringify([0, 1, 2, 3, 4, 5])
  await waitFor(settled, () => `disjoint assignments covering 6 partitions (a=${sta.assigned} b=${stb.assigned})`)
  eq([sta.assigned.length, stb.assigned.length], [3, 3], 'partitions per member')
  const pairMsgs = (prefix, n) => Array.from({ length: n }, (_, i) => ({ key: `${i}`, value: `${prefix}${i}`, partition: i % 6 }))
  res = await within(producer.send({ topic: T6, acks: -1, messages: pairMsgs('a', 60) }), 'producer.send() to 6 partitions')
  eq(sendResult(res).map(r => r[3]), [0, 0, 0, 0, 0, 0], 'base offsets on 6 partitions')
  await waitFor(() => sa.records.length + sb.records.length >= 60, () => `60 records (have ${sa.records.length}+${sb.records.length})`)
  await sleep(500)
  checkNoCrash(sa, sb)
  const values = recs => recs.map(r => r.value).sort()
  eq(values([...sa.records, ...sb.records]), Array.from({ length: 60 }, (_, i) => `a${i}`).sort(), 'every record consumed exactly once')
  eq([...new Set(sa.records.map(r => r.partition))].sort(), sta.assigned, 'partitions member a read from')
  eq([...new Set(sb.records.map(r => r.partition))].sort(), stb.assigned, 'partitions member b read from')
  await waitCommitted(admin, G2, T6, [10, 10, 10, 10, 10, 10])
  const desc = await within(admin.describeGroups([G2]), 'admin.describeGroups()')
  eq(
    desc.groups.map(g => [g.groupId, g.errorCode, g.state, g.protocolType, g.members.length]),
    [[G2, 0, 'Stable', 'consumer', 2]],
    'describeGroups of the active group'
  )

  begin('a member leaves: the other takes over from the commits')
  const joinsBefore = sta.joins
  await within(cb.disconnect(), 'consumer b disconnect()')
  await waitFor(
    () => sta.joins > joinsBefore && sta.assigned.length === 6,
    () => `member a to own all 6 partitions (has ${sta.assigned})`
  )
  sa.records.length = 0
  await within(producer.send({ topic: T6, acks: -1, messages: pairMsgs('b', 12) }), 'producer.send()')
  await waitFor(() => sa.records.length >= 12, () => `12 records (have ${sa.records.length})`)
  await sleep(500)
  checkNoCrash(sa)
  eq(
    sa.records.map(r => [r.partition, r.offset, r.value]).sort(),
    Array.from({ length: 12 }, (_, i) => [i % 6, 10 + Math.floor(i / 6), `b${i}`]).sort(),
    'records after the takeover'
  )
  await waitCommitted(admin, G2, T6, [12, 12, 12, 12, 12, 12])
  await within(ca.disconnect(), 'consumer a disconnect()')

  begin('a new member resumes after the committed offsets')
  await within(producer.send({ topic: T6, acks: -1, messages: pairMsgs('c', 6) }), 'producer.send()')
  const sc = newSink()
  const cc = groupConsumer(G2)
  await startConsumer(cc, T6, sc)
  await waitFor(() => sc.records.length >= 6, () => `6 records (have ${sc.records.length})`)
  await sleep(500)
  checkNoCrash(sc)
  eq(
    sc.records.map(r => [r.partition, r.offset, r.value]).sort(),
    Array.from({ length: 6 }, (_, i) => [i, 12, `c${i}`]).sort(),
    'records read by the new member'
  )
  await waitCommitted(admin, G2, T6, [13, 13, 13, 13, 13, 13])
  await within(cc.disconnect(), 'consumer c disconnect()')
  await within(producer.disconnect(), 'producer.disconnect()')

  begin('admin: groups')
  const groups = await within(admin.listGroups(), 'admin.listGroups()')
  eq(
    groups.groups.filter(g => g.groupId === G1 || g.groupId === G2).map(g => [g.groupId, g.protocolType]).sort(),
    [[G1, 'consumer'], [G2, 'consumer']].sort(),
    'listGroups'
  )
  const empty = await within(admin.describeGroups([G2]), 'admin.describeGroups()')
  eq(empty.groups.map(g => [g.groupId, g.errorCode, g.state, g.members.length]), [[G2, 0, 'Empty', 0]], 'describeGroups of the empty group')
  // resetOffsets commits the EARLIEST sentinel (-2), which the coordinator stores as it is (as
  // Kafka does); a member that finds it starts at the log start. (It takes ~5 s: kafkajs's helper
  // consumer waits maxWaitTime with its partitions paused.)
  await within(admin.resetOffsets({ groupId: G2, topic: T6, earliest: true }), 'admin.resetOffsets()')
  await waitCommitted(admin, G2, T6, [-2, -2, -2, -2, -2, -2])
  const sd = newSink()
  const cd = groupConsumer(G2)
  await startConsumer(cd, T6, sd)
  await waitFor(() => sd.records.length >= 78, () => `78 records after the reset (have ${sd.records.length})`)
  await sleep(500)
  checkNoCrash(sd)
  const everything = [
    ...Array.from({ length: 60 }, (_, i) => [i % 6, Math.floor(i / 6), `a${i}`]),
    ...Array.from({ length: 12 }, (_, i) => [i % 6, 10 + Math.floor(i / 6), `b${i}`]),
    ...Array.from({ length: 6 }, (_, i) => [i, 12, `c${i}`]),
  ]
  eq(sd.records.map(r => [r.partition, r.offset, r.value]).sort(), everything.sort(), 'records re-read after resetOffsets')
  await waitCommitted(admin, G2, T6, [13, 13, 13, 13, 13, 13])
  await within(cd.disconnect(), 'consumer d disconnect()')
  const deleted = await within(admin.deleteGroups([G1]), 'admin.deleteGroups()')
  eq(deleted.map(d => [d.groupId, d.errorCode]), [[G1, 0]], 'deleteGroups')
  const after = await within(admin.listGroups(), 'admin.listGroups()')
  eq(after.groups.filter(g => g.groupId === G1).length, 0, 'deleted group no longer listed')

  begin('admin: delete topics')
  await within(admin.deleteTopics({ topics: [T3, T6] }), 'admin.deleteTopics()')
  await waitFor(async () => {
    const names = await admin.listTopics()
    return !names.includes(T3) && !names.includes(T6)
  }, 'deleted topics to disappear from listTopics')
  await within(admin.disconnect(), 'admin.disconnect()')

  console.log(`OK: every kafkajs check passed in ${Date.now() - t0} ms`)
}

const watchdog = setTimeout(() => {
  console.error(`FAIL [${step}] the whole check did not finish within ${TOTAL_TIMEOUT_MS} ms`)
  process.exit(3)
}, TOTAL_TIMEOUT_MS)

main().then(
  () => {
    clearTimeout(watchdog)
    process.exit(0)
  },
  async err => {
    console.error(`FAIL ${err instanceof CheckFailed ? err.message : `[${step}] ${err && err.stack}`}`)
    await Promise.race([Promise.allSettled(clients.map(c => c.disconnect())), sleep(3000)])
    process.exit(1)
  }
)
