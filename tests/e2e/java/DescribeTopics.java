// Apache Kafka's own admin client describing topics: with a broker that serves
// DescribeTopicPartitions (KIP-966) it asks through it, paging by its cursor, and its answer
// carries each partition's eligible leader replicas, which Metadata does not.
//
// Usage: java -cp <classes>:<kafka-clients.jar>:<slf4j-api.jar> DescribeTopics <bootstrap> <page-size> <topic>...
// Prints one line per partition: topic partition leader replicas isr elr lastKnownElr
// (ids comma-separated, "-" for an empty list).

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;

public class DescribeTopics {
    static String ids(List<Node> nodes) {
        if (nodes == null) {
            return "null";
        }
        if (nodes.isEmpty()) {
            return "-";
        }
        return nodes.stream().map(n -> Integer.toString(n.id())).collect(Collectors.joining(","));
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        List<String> topics = Arrays.asList(args).subList(2, args.length);
        DescribeTopicsOptions options = new DescribeTopicsOptions().partitionSizeLimitPerResponse(Integer.parseInt(args[1]));
        try (Admin admin = Admin.create(props)) {
            Map<String, TopicDescription> described = admin.describeTopics(topics, options).allTopicNames().get();
            for (String t : topics) {
                for (TopicPartitionInfo p : described.get(t).partitions()) {
                    String leader = p.leader() == null ? "none" : Integer.toString(p.leader().id());
                    System.out.println(String.join(" ", t, Integer.toString(p.partition()), leader, ids(p.replicas()), ids(p.isr()), ids(p.elr()), ids(p.lastKnownElr())));
                }
            }
        }
    }
}
