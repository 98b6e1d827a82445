// A bounded Apache Flink 2.x job with the Kafka connector (KafkaSink / KafkaSource), run as a plain `java`
// main() in a local MiniCluster by tests/peers/test_flink.py, against kgate's SASL_PLAINTEXT + GSSAPI listener.
//
//   FlinkKafkaJob write BOOTSTRAP TOPIC COUNT KEYS [flink.option=value ...]
//       writes COUNT records, record i = key "key-<i % KEYS>", value "value-<i>", in order i = 0..COUNT-1,
//       through a KafkaSink (AT_LEAST_ONCE, Kafka's default partitioner: a key always lands on one partition)
//   FlinkKafkaJob read BOOTSTRAP TOPIC GROUP [flink.option=value ...]
//       reads the topic from the earliest offsets up to the latest offsets seen at start (a bounded
//       KafkaSource) and prints one line per record (a print sink): "REC\t<partition>\t<offset>\t<key>\t<value>"
//
// The trailing options go into the Flink Configuration, as a deployment's config.yaml or `-D` options do. Kerberos
// is set up the way Flink deployments set it up: security.kerberos.login.keytab / .principal /
// .use-ticket-cache=false / .contexts=KafkaClient, installed by Flink's SecurityUtils (its JaasModule registers a
// Krb5LoginModule keytab entry under the JAAS context KafkaClient, which the Kafka clients use because no
// sasl.jaas.config is set). The JVM needs -Djava.security.krb5.conf for the KDC.
//
// Output on stdout: "JAAS KafkaClient <login module> <options>" (what Flink installed), "WROTE <n>" or the REC
// lines, then "DONE"; exit 0. Any failure: the stack trace on stderr and exit 1.

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

import javax.security.auth.login.AppConfigurationEntry;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.runtime.security.SecurityConfiguration;
import org.apache.flink.runtime.security.SecurityUtils;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

public final class FlinkKafkaJob {

    /** The Kafka client settings for kgate's GSSAPI listener (the JAAS entry comes from Flink, see above). */
    private static Map<String, String> kafkaSecurity() {
        Map<String, String> p = new LinkedHashMap<>();
        p.put("security.protocol", "SASL_PLAINTEXT");
        p.put("sasl.mechanism", "GSSAPI");
        p.put("sasl.kerberos.service.name", "kafka");
        return p;
    }

    /** Key and value of record i (serializable lambdas: SerializationSchema extends Serializable). */
    private static final class KeyOf implements SerializationSchema<Long> {
        private final int keys;

        KeyOf(int keys) {
            this.keys = keys;
        }

        @Override
        public byte[] serialize(Long i) {
            return ("key-" + (i % keys)).getBytes(StandardCharsets.UTF_8);
        }
    }

    private static final class ValueOf implements SerializationSchema<Long> {
        @Override
        public byte[] serialize(Long i) {
            return ("value-" + i).getBytes(StandardCharsets.UTF_8);
        }
    }

    /** One tab-separated line per record, with the partition and offset the broker gave it. */
    private static final class RecordLine implements KafkaRecordDeserializationSchema<String> {
        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> r, Collector<String> out) {
            String key = r.key() == null ? "<null>" : new String(r.key(), StandardCharsets.UTF_8);
            String value = r.value() == null ? "<null>" : new String(r.value(), StandardCharsets.UTF_8);
            out.collect("REC\t" + r.partition() + "\t" + r.offset() + "\t" + key + "\t" + value);
        }

        @Override
        public TypeInformation<String> getProducedType() {
            return Types.STRING;
        }
    }

    private static long write(Configuration conf, String bootstrap, String topic, long count, int keys)
            throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(1); // one writer: the order of the records of a key is the order of i
        KafkaSink<Long> sink = KafkaSink.<Long>builder()
                .setBootstrapServers(bootstrap)
                .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                .setRecordSerializer(KafkaRecordSerializationSchema.<Long>builder()
                        .setTopic(topic)
                        .setKeySerializationSchema(new KeyOf(keys))
                        .setValueSerializationSchema(new ValueOf())
                        .build())
                .setKafkaProducerConfig(props(kafkaSecurity()))
                .build();
        env.fromSequence(0, count - 1).sinkTo(sink).name("kgate-gssapi-sink");
        env.execute("kgate flink write " + topic);
        return count;
    }

    private static void read(Configuration conf, String bootstrap, String topic, String group) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(1); // one reader for all partitions, one print sink: lines come out in fetch order
        KafkaSource<String> source = KafkaSource.<String>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(topic)
                .setGroupId(group)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setBounded(OffsetsInitializer.latest())
                .setDeserializer(new RecordLine())
                .setProperties(props(kafkaSecurity()))
                .build();
        env.fromSource(source, WatermarkStrategy.noWatermarks(), "kgate-gssapi-source").print();
        env.execute("kgate flink read " + topic);
    }

    private static java.util.Properties props(Map<String, String> m) {
        java.util.Properties p = new java.util.Properties();
        p.putAll(m);
        return p;
    }

    /** What Flink's JaasModule registered for the Kafka clients' login context. */
    private static void printJaas() {
        AppConfigurationEntry[] entries =
                javax.security.auth.login.Configuration.getConfiguration().getAppConfigurationEntry("KafkaClient");
        if (entries == null) {
            System.out.println("JAAS KafkaClient <none>");
            return;
        }
        for (AppConfigurationEntry e : entries) {
            System.out.println("JAAS KafkaClient " + e.getLoginModuleName() + " " + new TreeMap<>(e.getOptions()));
        }
    }

    public static void main(String[] args) {
        try {
            if (args.length < 1 || !(args[0].equals("write") || args[0].equals("read"))
                    || args.length < (args[0].equals("write") ? 5 : 4)) {
                System.err.println("usage: FlinkKafkaJob write BOOTSTRAP TOPIC COUNT KEYS [flink.option=value ...]\n"
                        + "       FlinkKafkaJob read BOOTSTRAP TOPIC GROUP [flink.option=value ...]");
                System.exit(64);
            }
            boolean write = args[0].equals("write");
            int first = write ? 5 : 4;
            Map<String, String> options = new LinkedHashMap<>();
            for (int i = first; i < args.length; i++) {
                int eq = args[i].indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException("not a flink.option=value: " + args[i]);
                }
                options.put(args[i].substring(0, eq), args[i].substring(eq + 1));
            }
            // Everything the MiniCluster listens on stays on loopback (ports are random in a local run): the REST
            // endpoint, and the BlobServer, which binds jobmanager.bind-host (by default every interface).
            options.putIfAbsent("rest.bind-address", "127.0.0.1");
            options.putIfAbsent("rest.address", "127.0.0.1");
            options.putIfAbsent("jobmanager.bind-host", "127.0.0.1");
            options.putIfAbsent("taskmanager.bind-host", "127.0.0.1");
            Configuration conf = Configuration.fromMap(options);
            // What Flink's entry points (cluster, CLI) do before running anything: install the security modules
            // (JaasModule: the keytab entry under security.kerberos.login.contexts) and run inside the context.
            SecurityUtils.install(new SecurityConfiguration(conf));
            printJaas();
            Callable<Long> job = write
                    ? () -> write(conf, args[1], args[2], Long.parseLong(args[3]), Integer.parseInt(args[4]))
                    : () -> {
                        read(conf, args[1], args[2], args[3]);
                        return -1L;
                    };
            long n = SecurityUtils.getInstalledContext().runSecured(job);
            if (write) {
                System.out.println("WROTE " + n);
            }
            System.out.println("DONE");
            System.out.flush();
            System.exit(0);
        } catch (Throwable t) {
            t.printStackTrace();
            System.err.flush();
            System.exit(1);
        }
    }
}
