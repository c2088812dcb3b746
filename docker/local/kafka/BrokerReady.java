import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

/** Exit 0 when the broker answers and the cluster has a controller, 1 otherwise. */
public final class BrokerReady {
  public static void main(String[] args) {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args.length > 0 ? args[0] : "localhost:9092");
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "8000");
    try (Admin admin = Admin.create(props)) {
      DescribeClusterResult cluster = admin.describeCluster();
      boolean ready = !cluster.nodes().get(8, TimeUnit.SECONDS).isEmpty()
          && cluster.controller().get(8, TimeUnit.SECONDS) != null;
      System.exit(ready ? 0 : 1);
    } catch (Exception e) {
      System.err.println("broker not ready: " + e);
      System.exit(1);
    }
  }
}
