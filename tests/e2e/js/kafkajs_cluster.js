'use strict'
// kafkajs against a Gregor cluster: produce to every partition of a topic whose leaders are spread
// over the brokers (each request goes to its partition's leader, found through Metadata), then
// read everything back with a consumer group.
//
//   node kafkajs_cluster.js HOST:PORT TOPIC PARTITIONS
//
// Exits 0 and prints "OK" when every record came back at its partition, in order; else prints the
// mismatch and exits 1.

const { Kafka, logLevel, Partitioners } = require('kafkajs')

const [bootstrap, topic, partitionsArg] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const PER_PARTITION = 10
const TIMEOUT_MS = Number(process.env.TOTAL_TIMEOUT_MS || 60000)

setTimeout(() => {
  console.error(`timed out after ${TIMEOUT_MS} ms`)
  process.exit(1)
}, TIMEOUT_MS).unref()

async function main () {
  const kafka = new Kafka({ clientId: 'gregor-kafkajs-cluster', brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const messages = []
  for (let i = 0; i < partitions * PER_PARTITION; i++) {
    messages.push({ partition: i % partitions, value: `js-${i}` })
  }
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `kjs-cluster-${process.pid}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = new Map()
  let total = 0
  await new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (!got.has(partition)) got.set(partition, [])
        got.get(partition).push(message.value.toString())
        total++
        if (total === messages.length) resolve()
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  for (let p = 0; p < partitions; p++) {
    const want = messages.filter(m => m.partition === p).map(m => m.value)
    const have = got.get(p) || []
    if (JSON.stringify(have) !== JSON.stringify(want)) {
      console.error(`partition ${p}: expected ${JSON.stringify(want)}, got ${JSON.stringify(have)}`)
      process.exit(1)
    }
  }
  console.log(`OK: ${total} records over ${partitions} partitions`)
}

main().then(() => process.exit(0), e => {
  console.error(e)
  process.exit(1)
})
