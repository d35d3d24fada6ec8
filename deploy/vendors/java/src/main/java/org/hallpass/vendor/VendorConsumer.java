package org.hallpass.vendor;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
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
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A vendor's consumer of its hallpass partner topics with the Apache Kafka Java client.
 *
 * <p>Reads {@code partner.<id>.notices} and {@code partner.<id>.students} with
 * {@code isolation.level=read_committed}, decodes the Confluent wire format (byte 0, a 4-byte
 * big-endian schema id, the Avro body) with the writer schema from the registry's Confluent API
 * ({@code GET /schemas/ids/{id}}), keeps a local copy (a JSON file) keyed by the record key,
 * deletes a student on a tombstone, applies deletion notices (the whole record when
 * {@code fields} is empty, else the named fields become null), commits the group's offsets once
 * the copy is saved and prints a JSON summary.
 *
 * <p>One run reads to the end and stops: the students topic's end is noted first, then notices
 * are read to their end, then students up to the noted end, so every notice is applied before
 * the tombstone or reduced view of its transaction and before anything newer.
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
    Properties kafka = new Properties();
    if (args.containsKey("client-properties")) {
      try (InputStream in = new FileInputStream(args.get("client-properties"))) {
        kafka.load(in);
      }
    }
    kafka.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
    kafka.put(ConsumerConfig.GROUP_ID_CONFIG, args.getOrDefault("group", partner + "-java-vendor"));
    kafka.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    kafka.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    kafka.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

    Path copyFile = Path.of(args.get("copy"));
    ObjectNode copy = Files.exists(copyFile)
        ? (ObjectNode) JSON.readTree(copyFile.toFile()) : JSON.createObjectNode();
    Map<String, Object> summary = new LinkedHashMap<>();
    int[] upserts = {0}, tombstones = {0}, notices = {0}, wholeDeleted = {0}, fieldsDeleted = {0};

    String registryUserInfo = args.getOrDefault("registry-user-info",
        System.getenv("REGISTRY_USER_INFO"));
    VendorConsumer vendor = new VendorConsumer(kafka, args.get("registry"), registryUserInfo);
    try {
      String students = prefix + "partner." + partner + ".students";
      String noticesTopic = prefix + "partner." + partner + ".notices";
      Map<TopicPartition, Long> studentsEnd = vendor.ends(students); // 1. where students end
      vendor.read(vendor.ends(noticesTopic), record -> {               // 2. notices
        ObjectNode notice = vendor.decode(record.value());
        notices[0]++;
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
      Files.move(tmp, copyFile, StandardCopyOption.REPLACE_EXISTING); // save, then commit
      if (!vendor.toCommit.isEmpty()) {
        vendor.consumer.commitSync(vendor.toCommit);
      }
    } finally {
      vendor.consumer.close();
    }
    summary.put("client", "java kafka-clients");
    summary.put("partner", partner);
    summary.put("upserts", upserts[0]);
    summary.put("tombstones", tombstones[0]);
    summary.put("notices", notices[0]);
    summary.put("records_deleted_by_notices", wholeDeleted[0]);
    summary.put("fields_deleted_by_notices", fieldsDeleted[0]);
    summary.put("students_held", copy.size());
    System.out.println(JSON.writeValueAsString(summary));
  }
}
