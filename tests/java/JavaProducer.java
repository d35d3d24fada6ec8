// Test tool: publish records with the real Java Kafka client and its DEFAULT partitioner, as an
// SIS integration on Java (or Kafka Connect) would, so tests can check where Java puts a key.
//
//   java -cp <classes>:<kafka libs>/* JavaProducer <bootstrap> [client.properties] < records
//
// stdin: one record a line, "<topic>\t<key base64, empty for a null key>\t<value base64>".
// stdout: one line a record, in input order, once every send is acknowledged:
// "<topic>\t<partition>\t<offset>". Exit 0 when all are acknowledged; otherwise exit 1 with a
// one-line message on stderr. Logging goes to stderr only (stdout carries the results).
//
// The optional properties file holds extra Java client settings (security.protocol,
// sasl.jaas.config, ssl.truststore.*, ...). It may not choose the partitioner: the point of this
// tool is Kafka's default one (murmur2 of the serialized key for a keyed record).

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaProducer {

    private static final class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    private JavaProducer() {
    }

    public static void main(String[] args) {
        // Results go to the real stdout; anything else that writes to System.out (a logging
        // backend's console appender, say) lands on stderr instead.
        PrintStream results = new PrintStream(
                new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
        System.setOut(System.err);
        int status;
        try {
            run(args, results);
            status = 0;
        } catch (Failure e) {
            System.err.println("JavaProducer: " + e.getMessage());
            status = 1;
        } catch (Exception e) {
            System.err.println("JavaProducer: " + oneLine(e));
            status = 1;
        }
        results.flush();
        System.exit(status);
    }

    private static void run(String[] args, PrintStream results) throws Exception {
        if (args.length < 1 || args.length > 2 || args[0].isBlank()) {
            throw new Failure("usage: JavaProducer <bootstrap servers> [client properties file]");
        }
        Properties config = new Properties();
        // fail within a bounded time when the cluster is unreachable (the file may change it)
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "hallpass-java-producer");
        if (args.length == 2) {
            try (Reader in = Files.newBufferedReader(Path.of(args[1]), StandardCharsets.UTF_8)) {
                config.load(in);
            } catch (IOException e) {
                throw new Failure("cannot read client properties " + args[1] + ": " + oneLine(e));
            }
            for (String name : config.stringPropertyNames()) {
                if (name.startsWith("partitioner.")) {
                    throw new Failure(args[1] + " sets " + name
                            + ": this tool always uses Kafka's default partitioner");
                }
            }
        }
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
                ByteArraySerializer.class.getName());

        List<ProducerRecord<byte[], byte[]>> records = readRecords();
        List<Future<RecordMetadata>> sent = new ArrayList<>(records.size());
        boolean ok = false;
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config);
        try {
            for (ProducerRecord<byte[], byte[]> record : records) {
                sent.add(producer.send(record));
            }
            producer.flush();
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < sent.size(); i++) {
                RecordMetadata meta;
                try {
                    meta = sent.get(i).get();
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause() != null ? e.getCause() : e;
                    throw new Failure("record " + (i + 1) + " to " + records.get(i).topic()
                            + " was not acknowledged: " + oneLine(cause));
                }
                out.append(meta.topic()).append('\t').append(meta.partition()).append('\t')
                        .append(meta.offset()).append('\n');
            }
            results.print(out);
            results.flush();
            ok = true;
        } finally {
            producer.close(ok ? Duration.ofSeconds(30) : Duration.ZERO);
        }
    }

    private static List<ProducerRecord<byte[], byte[]>> readRecords() throws Failure, IOException {
        Base64.Decoder base64 = Base64.getDecoder();
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in,
                StandardCharsets.UTF_8));
        String line;
        int number = 0;
        while ((line = in.readLine()) != null) {
            number++;
            if (line.isEmpty()) {
                continue;
            }
            String[] fields = line.split("\t", -1);
            if (fields.length != 3 || fields[0].isEmpty()) {
                throw new Failure("stdin line " + number
                        + ": expected <topic>\\t<key base64 or empty>\\t<value base64>");
            }
            byte[] key;
            byte[] value;
            try {
                key = fields[1].isEmpty() ? null : base64.decode(fields[1]);
                value = base64.decode(fields[2]);
            } catch (IllegalArgumentException e) {
                throw new Failure("stdin line " + number + ": bad base64: " + e.getMessage());
            }
            // no partition: Kafka's default partitioner decides
            records.add(new ProducerRecord<>(fields[0], key, value));
        }
        return records;
    }

    private static String oneLine(Throwable e) {
        String message = e.getMessage();
        String text = e.getClass().getSimpleName() + (message == null ? "" : ": " + message);
        return text.replaceAll("\\s+", " ").trim();
    }
}
