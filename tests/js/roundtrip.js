#!/usr/bin/env node
// kafkajs round trip against a Weir broker. Driven by tests/test_kafkajs.py:
//
//   node roundtrip.js <bootstrap host:port[,host:port...]> <topic> <out.json>
//
// What this covers (kafkajs 2.2.4, its own pure-JS protocol implementation):
//   * ApiVersions negotiation and Metadata (admin + producer connect)
//   * admin.createTopics (3 partitions, waitForLeaders) and admin.listTopics
//   * producer.send / sendBatch with acks=-1, explicit partitions, null and
//     binary keys, null values (tombstones), empty values, CreateTime
//     timestamps, headers incl. duplicate keys (array values), uncompressed
//     and GZIP batches (the only codec kafkajs has built in; others need
//     extra codec packages)
//   * admin.fetchTopicOffsets (ListOffsets earliest + latest) and
//     admin.fetchTopicOffsetsByTimestamp (ListOffsets by timestamp)
//   * reading back WITHOUT a consumer group: kafkajs' consumer only works with
//     group coordination (which Weir does not have yet), so records are read
//     with kafkajs' internal cluster/broker Fetch API instead. That exercises
//     kafkajs' Fetch encoding and RecordBatch/GZIP decoding but relies on
//     kafkajs internals (pinned version, so stable).
// The Python side checks everything it writes to out.json against what it
// reads with confluent-kafka (librdkafka).
'use strict'

const fs = require('fs')
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const [bootstrap, topic, outFile] = process.argv.slice(2)
if (!bootstrap || !topic || !outFile) {
  console.error('usage: roundtrip.js <bootstrap> <topic> <out.json>')
  process.exit(64)
}

const PARTITIONS = 3
const PER_SEND = 200
const BASE_TS = (Math.floor(Date.now() / 1000) - 3600) * 1000

// Deterministic PRNG (mulberry32), seeded.
function rng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const b64 = (buf) => (buf === null || buf === undefined ? null : Buffer.from(buf).toString('base64'))

function makeMessages (seed, count, tsOffset) {
  const r = rng(seed)
  const msgs = []
  for (let i = 0; i < count; i++) {
    const x = r()
    const key = x < 0.1 ? null : x < 0.5 ? Buffer.from(`key-${seed}-${i}`) : Buffer.from([i & 255, 0, 255, (i >> 8) & 255])
    const y = r()
    const value = y < 0.05 ? null : y < 0.1 ? Buffer.alloc(0)
      : Buffer.from(`value ${i} `.repeat(1 + Math.floor(r() * 20)))
    const headers = r() < 0.5 ? {} : { trace: Buffer.from(`t${i}`), dup: [Buffer.from('x'), Buffer.from('y')] }
    msgs.push({
      partition: Math.floor(r() * PARTITIONS),
      key,
      value,
      headers,
      timestamp: String(BASE_TS + tsOffset + i)
    })
  }
  return msgs
}

// Headers in wire order, the way kafkajs encodes an object with array values.
const headerList = (h) => Object.keys(h).flatMap((k) => (Array.isArray(h[k]) ? h[k] : [h[k]]).map((v) => [k, b64(v)]))

function decodedHeaders (h) {
  return Object.keys(h || {}).flatMap((k) => (Array.isArray(h[k]) ? h[k] : [h[k]]).map((v) => [k, b64(v)]))
}

async function main () {
  const kafka = new Kafka({
    clientId: 'weir-tests-kafkajs',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 5 }
  })
  const out = { produced: [], sendResults: [], offsets: null, offsetsByTimestamp: null, fetched: {} }

  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true
  })
  out.topics = (await admin.listTopics()).filter((t) => t === topic)

  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false })
  await producer.connect()
  const rounds = [
    { seed: 1, compression: CompressionTypes.None, name: 'none' },
    { seed: 2, compression: CompressionTypes.GZIP, name: 'gzip' },
    { seed: 3, compression: CompressionTypes.None, name: 'none-batch', batch: true },
    { seed: 4, compression: CompressionTypes.GZIP, name: 'gzip-batch', batch: true }
  ]
  let tsOffset = 0
  for (const round of rounds) {
    const msgs = makeMessages(round.seed, PER_SEND, tsOffset)
    tsOffset += PER_SEND
    let res
    if (round.batch) {
      res = await producer.sendBatch({ acks: -1, compression: round.compression, topicMessages: [{ topic, messages: msgs }] })
    } else {
      res = await producer.send({ topic, acks: -1, compression: round.compression, messages: msgs })
    }
    out.sendResults.push({ round: round.name, results: res })
    for (const m of msgs) {
      out.produced.push({ partition: m.partition, key: b64(m.key), value: b64(m.value), headers: headerList(m.headers), timestamp: Number(m.timestamp) })
    }
  }
  await producer.disconnect()

  out.offsets = await admin.fetchTopicOffsets(topic)
  out.baseTs = BASE_TS
  // Timestamp of the 250th message produced (second round, i = 50).
  out.queryTs = BASE_TS + 250
  out.offsetsByTimestamp = await admin.fetchTopicOffsetsByTimestamp(topic, out.queryTs)
  out.offsetsAfterEnd = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + 10 * PER_SEND)

  // Fetch without a group via kafkajs' internal cluster (see header comment).
  const createCluster = Object.getOwnPropertySymbols(kafka).find((s) => s.toString().includes('createCluster'))
  if (!createCluster) throw new Error('kafkajs internals changed: no createCluster symbol')
  const cluster = kafka[createCluster]({ allowAutoTopicCreation: false, isolationLevel: 1 })
  await cluster.connect()
  await cluster.addTargetTopic(topic)
  const highs = Object.fromEntries(out.offsets.map((o) => [o.partition, Number(o.high)]))
  for (let p = 0; p < PARTITIONS; p++) {
    const leaders = cluster.findLeaderForPartitions(topic, [p])
    const nodeId = Object.keys(leaders)[0]
    const broker = await cluster.findBroker({ nodeId })
    const got = []
    let next = 0
    const deadline = Date.now() + 60000
    while (next < highs[p]) {
      if (Date.now() > deadline) throw new Error(`fetch timed out on partition ${p} at ${next}`)
      const resp = await broker.fetch({
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: 1048576,
        isolationLevel: 1,
        topics: [{ topic, partitions: [{ partition: p, fetchOffset: String(next), maxBytes: 65536 }] }]
      })
      const part = resp.responses[0].partitions[0]
      if (part.errorCode !== 0) throw new Error(`fetch error ${part.errorCode} on partition ${p}`)
      for (const m of part.messages) {
        const off = Number(m.offset)
        if (off < next) continue // earlier records of a batch containing `next`
        got.push({ offset: off, key: b64(m.key), value: b64(m.value), headers: decodedHeaders(m.headers), timestamp: Number(m.timestamp) })
        next = off + 1
      }
    }
    out.fetched[p] = got
  }
  await cluster.disconnect()
  await admin.disconnect()
  fs.writeFileSync(outFile, JSON.stringify(out, null, 1))
}

main().catch((e) => {
  console.error('roundtrip.js failed:', e && e.stack ? e.stack : e)
  process.exit(1)
})
