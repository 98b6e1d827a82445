// What a Java AdminClient (Kafka 4.4.0) sees of a cluster, printed as one JSON object for the peer tests
// (tests/peers/test_java_clients.py): the cluster's nodes, a topic's partitions and end offsets, and a
// consumer group's state, members and committed offsets. Errors are printed as the exception's class name,
// which is how the Java client names a Kafka error (e.g. UnknownTopicOrPartitionException).
//
//   java -cp ... AdminProbe CLIENT_PROPERTIES BOOTSTRAP TOPIC GROUP
import java.io.FileInputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;

public final class AdminProbe {
    private static String q(String s) {
        if (s == null) return "null";
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    private static String error(Throwable e) {
        Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        return "{\"error\":" + q(cause.getClass().getSimpleName()) + "}";
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) {
            props.load(in);
        }
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        String topic = args[2];
        String group = args[3];
        StringBuilder out = new StringBuilder("{");
        try (Admin admin = Admin.create(props)) {
            DescribeClusterResult cluster = admin.describeCluster();
            List<String> nodes = new ArrayList<>();
            for (Node n : cluster.nodes().get(30, TimeUnit.SECONDS)) {
                nodes.add("{\"id\":" + n.id() + ",\"address\":" + q(n.host() + ":" + n.port()) + "}");
            }
            out.append("\"cluster_id\":").append(q(cluster.clusterId().get(30, TimeUnit.SECONDS)));
            out.append(",\"nodes\":").append(nodes);

            String topicJson;
            int partitions = 0;
            try {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
                partitions = d.partitions().size();
                List<String> leaders = new ArrayList<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    leaders.add(String.valueOf(p.leader() == null ? -1 : p.leader().id()));
                }
                topicJson = "{\"partitions\":" + partitions + ",\"internal\":" + d.isInternal()
                        + ",\"leaders\":" + leaders + "}";
            } catch (ExecutionException e) {
                topicJson = error(e);
            }
            out.append(",\"topic\":").append(topicJson);

            Map<TopicPartition, OffsetSpec> latest = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
            for (int p = 0; p < partitions; p++) latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> endOffsets =
                    admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS);
            List<String> ends = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                ends.add(String.valueOf(endOffsets.get(new TopicPartition(topic, p)).offset()));
            }
            out.append(",\"end_offsets\":").append(ends);

            String groupJson;
            try {
                ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(group)).all()
                        .get(30, TimeUnit.SECONDS).get(group);
                groupJson = "{\"state\":" + q(g.groupState().toString()) + ",\"members\":" + g.members().size()
                        + ",\"simple\":" + g.isSimpleConsumerGroup() + "}";
            } catch (ExecutionException e) {
                groupJson = error(e);
            }
            out.append(",\"group\":").append(groupJson);

            List<String> committed = new ArrayList<>();
            try {
                Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                        .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
                for (int p = 0; p < partitions; p++) {
                    OffsetAndMetadata o = offsets.get(new TopicPartition(topic, p));
                    committed.add(String.valueOf(o == null ? -1 : o.offset()));
                }
                out.append(",\"committed\":").append(committed);
            } catch (ExecutionException e) {
                out.append(",\"committed\":").append(error(e));
            }

            String missing;
            try {
                admin.describeTopics(List.of(topic + "-never-created")).allTopicNames().get(30, TimeUnit.SECONDS);
                missing = "{\"error\":null}";
            } catch (ExecutionException e) {
                missing = error(e);
            }
            out.append(",\"missing_topic\":").append(missing);
        }
        System.out.println(out.append("}"));
    }
}
