#!/usr/bin/env node
// A vendor's consumer of its hallpass partner topics with kafkajs (the most used Node.js Kafka
// client, pure JavaScript) and avsc, schemas fetched from the registry's Confluent API.
//
// Reads partner.<id>.notices and partner.<id>.students read_committed (kafkajs's default),
// decodes the Confluent wire format (byte 0, a 4-byte big-endian schema id, the Avro body)
// with the writer schema from GET <registry>/schemas/ids/<id>, keeps a local copy (a JSON
// file) keyed by the record key, deletes a student on a tombstone, applies deletion notices
// (the whole record when `fields` is empty, else the named fields become null), saves the copy,
// acknowledges each notice on partner.<id>.acks (the proof of deletion: a DeletionAck,
// schemas/deletion_ack.avsc, encoded with avsc in the Confluent wire format under the schema id
// the district registered for partner.<id>.acks-value, from
// GET <registry>/subjects/<subject>/versions/latest), commits the group's offsets once the
// acknowledgements are written and prints a JSON summary.
//
// One run reads to the end and stops: the students topic's end is noted first, then notices
// are read to their end, then students up to the noted end, so every notice is applied before
// the tombstone or reduced view of its transaction and before anything newer. A crash after the
// copy is saved and before the offsets are committed acknowledges those notices again on the
// next run, which is harmless (the first acknowledgement counts).
//
// kafkajs decompresses only gzip without plugins: the topics must be gzip (or uncompressed),
// see the README's vendor guide. An LZ4 batch fails with "LZ4 compression not implemented".
//
//   npm ci && node vendor-consumer.js --bootstrap 127.0.0.1:9092 \
//     --registry http://127.0.0.1:8081/apis/ccompat/v7 --partner learnwell --copy learnwell.json
//
// Secure bus: --sasl-user/--sasl-password (SCRAM-SHA-512), --ca ca.pem,
// --registry-user-info hallpass-reader:... (or REGISTRY_USER_INFO).
'use strict'

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')
const avro = require('avsc')

function parseArgs(argv) {
  const args = { topicPrefix: '', registryUserInfo: process.env.REGISTRY_USER_INFO }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    args[name] = argv[i + 1]
  }
  for (const required of ['bootstrap', 'registry', 'partner', 'copy']) {
    if (!args[required]) throw new Error(`--${required} is required`)
  }
  args.group = args.group || `${args.partner}-node-vendor`
  return args
}

class Registry {
  constructor(url, userInfo, ca) {
    this.url = url.replace(/\/$/, '')
    this.headers = { Accept: 'application/vnd.schemaregistry.v1+json' }
    if (userInfo) this.headers.Authorization = `Basic ${Buffer.from(userInfo).toString('base64')}`
    if (ca) process.env.NODE_EXTRA_CA_CERTS = ca // read at start: pass it in the environment
    this.types = new Map()
  }

  async type(id) {
    if (!this.types.has(id)) {
      const response = await fetch(`${this.url}/schemas/ids/${id}`, { headers: this.headers })
      if (!response.ok) throw new Error(`registry: schema ${id}: HTTP ${response.status}`)
      const { schema } = await response.json()
      // no logical types: dates and timestamps stay the ints they are; unions unwrapped
      this.types.set(id, avro.Type.forSchema(JSON.parse(schema), { wrapUnions: false }))
    }
    return this.types.get(id)
  }

  // The id and schema registered last under `subject` (nothing is registered: a vendor's
  // registry user is read-only).
  async latest(subject) {
    const url = `${this.url}/subjects/${encodeURIComponent(subject)}/versions/latest`
    const response = await fetch(url, { headers: this.headers })
    if (!response.ok) {
      throw new Error(`registry: ${subject}: HTTP ${response.status} ` +
        '(the district registers it: hallpass contracts apply)')
    }
    const { id, schema } = await response.json()
    return { id, type: avro.Type.forSchema(JSON.parse(schema), { wrapUnions: false }) }
  }

  // A record in the Confluent wire format: byte 0, the schema id (4 bytes, big-endian), the
  // Avro body.
  static encode(id, type, value) {
    const header = Buffer.alloc(5)
    header.writeUInt32BE(id, 1)
    return Buffer.concat([header, type.toBuffer(value)])
  }

  async decode(buffer) {
    if (buffer.length < 5 || buffer[0] !== 0) throw new Error('not the Confluent wire format')
    const type = await this.type(buffer.readUInt32BE(1))
    return JSON.parse(JSON.stringify(type.fromBuffer(buffer.subarray(5))))
  }
}

function nullOut(record, path) {
  const names = path.split('.')
  const leaf = names.pop()
  let node = record
  for (const name of names) node = node && typeof node === 'object' ? node[name] : null
  if (!node || typeof node !== 'object' || node[leaf] === null || node[leaf] === undefined) {
    return false
  }
  node[leaf] = null
  return true
}

async function partitionsOf(admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic) // high: the last stable offset
  const ends = new Map(offsets.map(o => [o.partition, Number(o.high)]))
  const lows = new Map(offsets.map(o => [o.partition, Number(o.low)]))
  return { ends, lows }
}

// Apply every record of `topic` from the group's committed offset up to `ends`.
async function readTopic(kafka, admin, group, topic, ends, lows, apply) {
  const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  const position = new Map()
  for (const { partition, offset } of committed.partitions) {
    position.set(partition, Math.max(Number(offset), lows.get(partition) ?? 0))
  }
  const pending = new Set([...ends.keys()].filter(p => (position.get(p) ?? 0) < ends.get(p)))
  if (pending.size === 0) return []

  const consumer = kafka.consumer({ groupId: group, readUncommitted: false, maxWaitTimeInMs: 100 })
  await consumer.connect()
  try {
    await new Promise((resolve, reject) => {
      const advance = (partition, lastOffset) => {
        if (Number(lastOffset) + 1 >= ends.get(partition)) pending.delete(partition)
        if (pending.size === 0) resolve()
      }
      // also sent for batches holding only transaction markers, which eachBatch never sees
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) =>
        advance(payload.partition, payload.lastOffset))
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error))
      consumer.subscribe({ topic, fromBeginning: true })
        .then(() => consumer.run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            for (const message of batch.messages) {
              if (Number(message.offset) < ends.get(batch.partition)) await apply(message)
            }
          },
        }))
        .catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
  return [...ends].filter(([p, end]) => end > (position.get(p) ?? 0))
    .map(([partition, end]) => ({ partition, offset: String(end) }))
}

// Acknowledge each notice on the acks topic, keyed like the notice; resolves once every
// acknowledgement is written (rejects if one is not: then nothing is committed).
async function acknowledge(kafka, registry, topic, partner, notices, deletedAt, note) {
  const { id, type } = await registry.latest(`${topic}-value`)
  const producer = kafka.producer({ idempotent: true })
  await producer.connect()
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: notices.map(notice => ({
        key: notice.partner_student_key,
        value: Registry.encode(id, type, {
          notice_id: notice.event_id,
          partner,
          partner_student_key: notice.partner_student_key,
          deleted_at: deletedAt,
          note,
        }),
      })),
    })
  } finally {
    await producer.disconnect()
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const registry = new Registry(args.registry, args.registryUserInfo, args.ca)
  const kafka = new Kafka({
    clientId: `${args.partner}-vendor`,
    brokers: args.bootstrap.split(','),
    logLevel: logLevel.ERROR,
    ssl: args.ca ? { ca: [fs.readFileSync(args.ca)] } : undefined,
    sasl: args.saslUser
      ? { mechanism: 'scram-sha-512', username: args.saslUser, password: args.saslPassword }
      : undefined,
  })
  const studentsTopic = `${args.topicPrefix}partner.${args.partner}.students`
  const noticesTopic = `${args.topicPrefix}partner.${args.partner}.notices`
  const acksTopic = `${args.topicPrefix}partner.${args.partner}.acks`
  const copy = fs.existsSync(args.copy) ? JSON.parse(fs.readFileSync(args.copy, 'utf8')) : {}
  const summary = {
    client: 'node kafkajs', partner: args.partner, upserts: 0, tombstones: 0, notices: 0,
    records_deleted_by_notices: 0, fields_deleted_by_notices: 0, acknowledged: 0,
  }
  const applied = [] // the notices to acknowledge once the copy is saved

  const admin = kafka.admin()
  await admin.connect()
  try {
    const students = await partitionsOf(admin, studentsTopic) // 1. note where students end
    const notices = await partitionsOf(admin, noticesTopic)
    const noticeCommits = await readTopic(kafka, admin, args.group, noticesTopic, // 2. notices
      notices.ends, notices.lows, async message => {
        const notice = await registry.decode(message.value)
        summary.notices += 1
        applied.push(notice)
        const key = notice.partner_student_key
        if (notice.fields.length === 0) { // the whole record
          if (key in copy) summary.records_deleted_by_notices += 1
          delete copy[key]
        } else if (key in copy) {
          for (const path of notice.fields) {
            if (nullOut(copy[key], path)) summary.fields_deleted_by_notices += 1
          }
        }
      })
    const studentCommits = await readTopic(kafka, admin, args.group, studentsTopic, // 3.
      students.ends, students.lows, async message => {
        const key = message.key.toString()
        if (message.value === null) { // tombstone: delete the student
          delete copy[key]
          summary.tombstones += 1
        } else {
          copy[key] = await registry.decode(message.value)
          summary.upserts += 1
        }
      })
    fs.writeFileSync(`${args.copy}.tmp`, JSON.stringify(copy))
    fs.renameSync(`${args.copy}.tmp`, args.copy) // save the copy, acknowledge, then commit
    if (applied.length) {
      const deletedAt = Date.now() // the copy holds the deletions from now on
      await acknowledge(kafka, registry, acksTopic, args.partner, applied, deletedAt,
        summary.client)
      summary.acknowledged = applied.length
    }
    for (const [topic, partitions] of [[noticesTopic, noticeCommits],
      [studentsTopic, studentCommits]]) {
      if (partitions.length) await admin.setOffsets({ groupId: args.group, topic, partitions })
    }
  } finally {
    await admin.disconnect()
  }
  summary.students_held = Object.keys(copy).length
  console.log(JSON.stringify(summary))
}

main().catch(error => {
  console.error(`vendor-consumer: ${error.message || error}`)
  process.exit(1)
})
