package org.hallpass.vendor;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Future;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A vendor's consumer of its hallpass partner topics with the Apache Kafka Java client.
 *
 * <p>Reads {@code partner.<id>.notices} and {@code partner.<id>.students} with
 * {@code isolation.level=read_committed}, decodes the Confluent wire format (byte 0, a 4-byte
 * big-endian schema id, the Avro body) with the writer schema from the registry's Confluent API
 * ({@code GET /schemas/ids/{id}}), keeps a local copy (a JSON file) keyed by the record key,
 * deletes a student on a tombstone, applies deletion notices (the whole record when
 * {@code fields} is empty, else the named fields become null), saves the copy, acknowledges each
 * notice on {@code partner.<id>.acks} (the proof of deletion: a {@code DeletionAck},
 * schemas/deletion_ack.avsc, encoded with Apache Avro in the Confluent wire format under the
 * schema id the district registered for {@code partner.<id>.acks-value}, fetched with
 * {@code GET /subjects/{subject}/versions/latest}), commits the group's offsets once the
 * acknowledgements are written and prints a JSON summary.
 *
 * <p>One run reads to the end and stops: the students topic's end is noted first, then notices
 * are read to their end, then students up to the noted end, so every notice is applied before
 * the tombstone or reduced view of its transaction and before anything newer. A crash after the
 * copy is saved and before the offsets are committed acknowledges those notices again on the next
 * run, which is harmless (the first acknowledgement counts).
 *
 * <pre>
 * java -jar hallpass-vendor-consumer.jar --bootstrap 127.0.0.1:9092 \
 *   --registry http://127.0.0.1:8081/apis/ccompat/v7 --partner learnwell --copy learnwell.json \
 *   [--topic-prefix P] [--group G] [--client-properties vendor.properties]
 *   [--registry-user-info user:password]   (or REGISTRY_USER_INFO)
 * </pre>
 *
 * <p>A secure bus: {@code --client-properties} with {@code security.protocol=SASL_SSL},
 * {@code sasl.mechanism=SCRAM-SHA-512}, {@code sasl.jaas.config=...}, {@code
 * ssl.truststore.location=...}; the registry's CA in the JVM's trust store.
 */
public final class VendorConsumer {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final KafkaConsumer<byte[], byte[]> consumer;
  private final HttpClient http = HttpClient.newHttpClient();
  private final String registry;
  private final String registryAuth;
  private final Map<Integer, Schema> schemas = new HashMap<>();
  private final Map<TopicPartition, OffsetAndMetadata> toCommit = new HashMap<>();

  VendorConsumer(Properties kafka, String registry, String registryUserInfo) {
    this.consumer = new KafkaConsumer<>(kafka, new ByteArrayDeserializer(),
        new ByteArrayDeserializer());
    this.registry = registry.replaceAll("/$", "");
    this.registryAuth = registryUserInfo == null ? null : "Basic " + Base64.getEncoder()
        .encodeToString(registryUserInfo.getBytes(StandardCharsets.UTF_8));
  }

  /** The writer schema of a registry id, fetched once. */
  Schema schema(int id) throws IOException, InterruptedException {
    Schema known = schemas.get(id);
    if (known != null) {
      return known;
    }
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(registry + "/schemas/ids/" + id))
        .header("Accept", "application/vnd.schemaregistry.v1+json")
        .timeout(Duration.ofSeconds(30));
    if (registryAuth != null) {
      request.header("Authorization", registryAuth);
    }
    HttpResponse<String> response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    if (response.statusCode() != 200) {
      throw new IOException("registry: schema " + id + ": HTTP " + response.statusCode());
    }
    Schema schema = new Schema.Parser().parse(JSON.readTree(response.body()).get("schema").asText());
    schemas.put(id, schema);
    return schema;
  }

  /** The id and schema registered last under {@code subject} (nothing is registered: a
   * vendor's registry user is read-only). */
  JsonNode latest(String subject) throws IOException, InterruptedException {
    String path = "/subjects/" + URLEncoder.encode(subject, StandardCharsets.UTF_8)
        + "/versions/latest";
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(registry + path))
        .header("Accept", "application/vnd.schemaregistry.v1+json")
        .timeout(Duration.ofSeconds(30));
    if (registryAuth != null) {
      request.header("Authorization", registryAuth);
    }
    HttpResponse<String> response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    if (response.statusCode() != 200) {
      throw new IOException("registry: " + subject + ": HTTP " + response.statusCode()
          + " (the district registers it: hallpass contracts apply)");
    }
    return JSON.readTree(response.body());
  }

  /** A record in the Confluent wire format: byte 0, the schema id (4 bytes, big-endian), the
   * Avro body. */
  static byte[] encode(int schemaId, Schema schema, GenericRecord record) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(0);
    out.write(ByteBuffer.allocate(4).putInt(schemaId).array());
    BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
    new GenericDatumWriter<GenericRecord>(schema).write(record, encoder);
    encoder.flush();
    return out.toByteArray();
  }

  /** Acknowledges each notice on the acks topic, keyed like the notice; returns once every
   * acknowledgement is written (an exception if one is not: then nothing is committed). */
  void acknowledge(Properties base, String topic, String partner, List<ObjectNode> notices,
      long deletedAt, String note) throws Exception {
    JsonNode registered = latest(topic + "-value");
    int schemaId = registered.get("id").asInt();
    Schema schema = new Schema.Parser().parse(registered.get("schema").asText());
    Properties config = new Properties();
    config.putAll(base);
    config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    config.put(ProducerConfig.ACKS_CONFIG, "all");
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config,
        new ByteArraySerializer(), new ByteArraySerializer())) {
      List<Future<?>> sent = new ArrayList<>();
      for (ObjectNode notice : notices) {
        String key = notice.get("partner_student_key").asText();
        GenericRecord ack = new GenericData.Record(schema);
        ack.put("notice_id", notice.get("event_id").asText());
        ack.put("partner", partner);
        ack.put("partner_student_key", key);
        ack.put("deleted_at", deletedAt);
        ack.put("note", note);
        sent.add(producer.send(new ProducerRecord<>(topic,
            key.getBytes(StandardCharsets.UTF_8), encode(schemaId, schema, ack))));
      }
      for (Future<?> done : sent) {
        done.get(); // throws if the broker did not take it
      }
    }
  }

  /** A Confluent-framed Avro value as JSON (dates and timestamps as the ints they are). */
  ObjectNode decode(byte[] value) throws IOException, InterruptedException {
    ByteBuffer buffer = ByteBuffer.wrap(value);
    if (value.length < 5 || buffer.get() != 0) {
      throw new IOException("not the Confluent wire format");
    }
    Schema schema = schema(buffer.getInt());
    GenericDatumReader<Object> reader = new GenericDatumReader<>(schema, schema, new GenericData());
    Object record = reader.read(null,
        DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, null));
    return (ObjectNode) JSON.readTree(GenericData.get().toString(record));
  }

  /** Each partition's end as a read_committed consumer sees it (the last stable offset). */
  Map<TopicPartition, Long> ends(String topic) {
    List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(30));
    if (infos == null || infos.isEmpty()) {
      throw new IllegalStateException(topic + " does not exist");
    }
    List<TopicPartition> partitions = new ArrayList<>();
    infos.forEach(i -> partitions.add(new TopicPartition(topic, i.partition())));
    return consumer.endOffsets(partitions, Duration.ofSeconds(30));
  }

  interface Apply {
    void accept(ConsumerRecord<byte[], byte[]> record) throws IOException, InterruptedException;
  }

  /** Apply every record from the group's committed offset up to {@code ends}. */
  void read(Map<TopicPartition, Long> ends, Apply apply) throws IOException, InterruptedException {
    Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(ends.keySet());
    consumer.assign(ends.keySet());
    Map<TopicPartition, Long> starts = new HashMap<>();
    for (TopicPartition tp : ends.keySet()) {
      OffsetAndMetadata at = committed.get(tp);
      if (at == null) {
        consumer.seekToBeginning(List.of(tp));
      } else {
        consumer.seek(tp, at.offset());
      }
      starts.put(tp, consumer.position(tp));
    }
    Set<TopicPartition> pending = new HashSet<>();
    ends.forEach((tp, end) -> {
      if (starts.get(tp) < end) {
        pending.add(tp);
      }
    });
    while (!pending.isEmpty()) {
      for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
        TopicPartition tp = new TopicPartition(record.topic(), record.partition());
        if (record.offset() < ends.get(tp)) {
          apply.accept(record);
        }
      }
      // the position moves past transaction markers too
      pending.removeIf(tp -> consumer.position(tp) >= ends.get(tp));
    }
    consumer.assign(List.of());
    ends.forEach((tp, end) -> {
      if (end > starts.get(tp)) {
        toCommit.put(tp, new OffsetAndMetadata(end));
      }
    });
  }

  static void nullOut(ObjectNode record, String path, int[] count) {
    String[] names = path.split("\\.");
    JsonNode node = record;
    for (int i = 0; i < names.length - 1 && node != null; i++) {
      node = node.get(names[i]);
    }
    String leaf = names[names.length - 1];
    if (node instanceof ObjectNode parent && parent.hasNonNull(leaf)) {
      parent.set(leaf, NullNode.getInstance());
      count[0]++;
    }
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    }
    for (String required : List.of("bootstrap", "registry", "partner", "copy")) {
      if (!args.containsKey(required)) {
        System.err.println("vendor-consumer: --" + required + " is required");
        System.exit(2);
      }
    }
    String partner = args.get("partner");
    String prefix = args.getOrDefault("topic-prefix", "");
    Properties base = new Properties(); // the connection: the consumer's and the producer's
    if (args.containsKey("client-properties")) {
      try (InputStream in = new FileInputStream(args.get("client-properties"))) {
        base.load(in);
      }
    }
    base.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
    Properties kafka = new Properties();
    kafka.putAll(base);
    kafka.put(ConsumerConfig.GROUP_ID_CONFIG, args.getOrDefault("group", partner + "-java-vendor"));
    kafka.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    kafka.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    kafka.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

    Path copyFile = Path.of(args.get("copy"));
    ObjectNode copy = Files.exists(copyFile)
        ? (ObjectNode) JSON.readTree(copyFile.toFile()) : JSON.createObjectNode();
    Map<String, Object> summary = new LinkedHashMap<>();
    int[] upserts = {0}, tombstones = {0}, notices = {0}, wholeDeleted = {0}, fieldsDeleted = {0};
    List<ObjectNode> applied = new ArrayList<>(); // to acknowledge once the copy is saved
    String client = "java kafka-clients";

    String registryUserInfo = args.getOrDefault("registry-user-info",
        System.getenv("REGISTRY_USER_INFO"));
    VendorConsumer vendor = new VendorConsumer(kafka, args.get("registry"), registryUserInfo);
    try {
      String students = prefix + "partner." + partner + ".students";
      String noticesTopic = prefix + "partner." + partner + ".notices";
      String acksTopic = prefix + "partner." + partner + ".acks";
      Map<TopicPartition, Long> studentsEnd = vendor.ends(students); // 1. where students end
      vendor.read(vendor.ends(noticesTopic), record -> {               // 2. notices
        ObjectNode notice = vendor.decode(record.value());
        notices[0]++;
        applied.add(notice);
        String key = notice.get("partner_student_key").asText();
        JsonNode fields = notice.get("fields");
        if (fields.isEmpty()) { // the whole record
          if (copy.remove(key) != null) {
            wholeDeleted[0]++;
          }
        } else if (copy.get(key) instanceof ObjectNode held) {
          fields.forEach(path -> nullOut(held, path.asText(), fieldsDeleted));
        }
      });
      vendor.read(studentsEnd, record -> {                             // 3. students
        String key = new String(record.key(), StandardCharsets.UTF_8);
        if (record.value() == null) { // tombstone: delete the student
          copy.remove(key);
          tombstones[0]++;
        } else {
          copy.set(key, vendor.decode(record.value()));
          upserts[0]++;
        }
      });
      Path tmp = copyFile.resolveSibling(copyFile.getFileName() + ".tmp");
      JSON.writeValue(tmp.toFile(), copy);
      Files.move(tmp, copyFile, StandardCopyOption.REPLACE_EXISTING); // save, acknowledge,
      if (!applied.isEmpty()) {                                         // then commit
        long deletedAt = System.currentTimeMillis(); // the copy holds the deletions from now on
        vendor.acknowledge(base, acksTopic, partner, applied, deletedAt, client);
      }
      if (!vendor.toCommit.isEmpty()) {
        vendor.consumer.commitSync(vendor.toCommit);
      }
    } finally {
      vendor.consumer.close();
    }
    summary.put("client", client);
    summary.put("partner", partner);
    summary.put("upserts", upserts[0]);
    summary.put("tombstones", tombstones[0]);
    summary.put("notices", notices[0]);
    summary.put("records_deleted_by_notices", wholeDeleted[0]);
    summary.put("fields_deleted_by_notices", fieldsDeleted[0]);
    summary.put("acknowledged", applied.size());
    summary.put("students_held", copy.size());
    System.out.println(JSON.writeValueAsString(summary));
  }
}
