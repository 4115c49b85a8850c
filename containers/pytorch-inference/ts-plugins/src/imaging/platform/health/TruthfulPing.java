package imaging.platform.health;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.pytorch.serve.servingsdk.Context;
import org.pytorch.serve.servingsdk.Model;
import org.pytorch.serve.servingsdk.ModelServerEndpoint;
import org.pytorch.serve.servingsdk.Worker;
import org.pytorch.serve.servingsdk.annotations.Endpoint;
import org.pytorch.serve.servingsdk.annotations.helpers.EndpointTypes;
import org.pytorch.serve.servingsdk.http.Request;
import org.pytorch.serve.servingsdk.http.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * GET /ping that answers 200 only when a request would be served now.
 *
 * <p>TorchServe's own ping (ApiUtils.isModelHealthy) stays "Healthy" until a model has had too few running
 * workers for max_retry_timeout_in_sec (5 minutes by default), so it said 200 for minutes while the only worker
 * was dead and its model folder gone. The frontend routes an INFERENCE plugin endpoint before its built-in
 * paths (InferenceRequestHandler.handleRequest), so this class replaces it. Worker.isRunning() is the SDK's
 * view of WorkerState.WORKER_MODEL_LOADED: false while a worker starts, loads, or is being restarted.
 *
 * <p>Healthy means: at least one model is registered (unless SAGEMAKER_MULTI_MODEL=true, where an endpoint
 * starts empty and SageMaker loads models later) and every registered model has a worker with its model
 * loaded. Otherwise 503 with the project's error shape ({"error": {"status", "message"}}) naming the cause.
 *
 * <p>Ready means ready (issue 19): the workers warm the model up before they report loaded, but the frontend's
 * own first /invocations (the request handler, the job queue, the encoder to the worker: classes loaded and
 * code run for the first time) cost the first real request ~0.14 s more than the next, measured by
 * benchmarks/serving.py. So the first time every model has a loaded worker, /ping starts one request of its
 * own through /invocations (a zip-typed body of zeros, which the worker refuses with a 400 before any model
 * work) and answers 503 until it is answered. Once per frontend: a restarted worker needs no second one.
 * SERVING_WARMUP=0 (the workers' switch) skips it, and so does a multi-model endpoint (no default model).
 */
@Endpoint(
        urlPattern = "ping",
        endpointType = EndpointTypes.INFERENCE,
        description = "200 only when every registered model has a worker with its model loaded")
public class TruthfulPing extends ModelServerEndpoint {

    private static final Logger LOGGER = LoggerFactory.getLogger(TruthfulPing.class);
    /** The warm-up request's body: a few MiB, so that the body's path runs its large-body code too. */
    private static final int WARM_UP_BYTES = 16 << 20;
    private static final AtomicBoolean WARM_UP_STARTED = new AtomicBoolean();
    private static volatile boolean frontendWarm = !frontendWarmUpEnabled();

    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        Map<String, Model> models = new TreeMap<>(context.getModels());
        StringBuilder perModel = new StringBuilder();
        String problem = null;
        for (Map.Entry<String, Model> entry : models.entrySet()) {
            int total = 0;
            int ready = 0;
            for (Worker worker : entry.getValue().getModelWorkers()) {
                total++;
                if (worker.isRunning()) {
                    ready++;
                }
            }
            if (perModel.length() > 0) {
                perModel.append(", ");
            }
            perModel.append(quote(entry.getKey()))
                    .append(": {\"workers\": ")
                    .append(total)
                    .append(", \"ready\": ")
                    .append(ready)
                    .append('}');
            if (ready == 0 && problem == null) {
                problem = "model '" + entry.getKey() + "' has no worker with the model loaded (" + total
                        + " workers starting, loading or restarting); no request can be served until one has";
            }
        }
        if (models.isEmpty() && !"true".equals(System.getenv("SAGEMAKER_MULTI_MODEL"))) {
            problem = "no model is registered yet: TorchServe registers the model at startup, then loads it in"
                    + " its workers";
        }
        if (problem == null && !frontendWarm) {
            if (WARM_UP_STARTED.compareAndSet(false, true)) {
                String address = context.getConfig().getProperty("inference_address", "http://127.0.0.1:8080");
                Thread warmUp = new Thread(() -> warmUpFrontend(address), "frontend-warm-up");
                warmUp.setDaemon(true);
                warmUp.start();
            }
            problem = "the frontend is warming up: one request of its own through /invocations before the first"
                    + " real one (SERVING_WARMUP=0 skips it)";
        }
        String body;
        if (problem == null) {
            response.setStatus(200);
            body = "{\"status\": \"Healthy\", \"models\": {" + perModel + "}}";
        } else {
            response.setStatus(503);
            body = "{\"status\": \"Unhealthy\", \"error\": {\"status\": 503, \"message\": " + quote(problem)
                    + "}, \"models\": {" + perModel + "}}";
        }
        response.setContentType("application/json");
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        try (OutputStream out = response.getOutputStream()) {
            out.write(bytes);
        }
    }

    private static boolean frontendWarmUpEnabled() {
        String warmUp = System.getenv("SERVING_WARMUP");
        boolean off = warmUp != null && ("0".equals(warmUp.trim()) || "false".equalsIgnoreCase(warmUp.trim()));
        return !off && !"true".equals(System.getenv("SAGEMAKER_MULTI_MODEL"));
    }

    /**
     * POST the zeros to this frontend's /invocations and read the answer; whatever happens, the frontend counts
     * as warm afterwards: the warm-up saves time, it must never keep /ping at 503.
     */
    private static void warmUpFrontend(String inferenceAddress) {
        long started = System.nanoTime();
        // The toolkit binds 0.0.0.0 (every interface): this process reaches itself on loopback.
        String base = inferenceAddress.trim().replace("://0.0.0.0:", "://127.0.0.1:");
        try {
            HttpURLConnection connection =
                    (HttpURLConnection) URI.create(base + "/invocations").toURL().openConnection();
            connection.setRequestMethod("POST");
            connection.setDoOutput(true);
            connection.setConnectTimeout(10_000);
            connection.setReadTimeout(120_000);
            connection.setRequestProperty("Content-Type", "application/zip");
            connection.setRequestProperty("Accept", "application/json");
            connection.setFixedLengthStreamingMode(WARM_UP_BYTES);
            byte[] chunk = new byte[1 << 20];
            try (OutputStream out = connection.getOutputStream()) {
                for (int sent = 0; sent < WARM_UP_BYTES; sent += chunk.length) {
                    out.write(chunk, 0, Math.min(chunk.length, WARM_UP_BYTES - sent));
                }
            }
            int status = connection.getResponseCode();
            InputStream answer = status < 400 ? connection.getInputStream() : connection.getErrorStream();
            if (answer != null) {
                try (InputStream in = answer) {
                    in.readAllBytes();
                }
            }
            LOGGER.info("frontend warmed up in {} ms: /invocations answered {} to its warm-up request",
                    (System.nanoTime() - started) / 1_000_000, status);
        } catch (IOException | RuntimeException error) {
            LOGGER.warn("the frontend's warm-up request through {}/invocations failed (serving anyway): {}",
                    base, error.toString());
        } finally {
            frontendWarm = true;
        }
    }

    /** A JSON string (TorchServe model names are [A-Za-z0-9_-], but the text is escaped regardless). */
    private static String quote(String text) {
        StringBuilder quoted = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                quoted.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                quoted.append(String.format("\\u%04x", (int) c));
            } else {
                quoted.append(c);
            }
        }
        return quoted.append('"').toString();
    }
}
