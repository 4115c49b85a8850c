package imaging.platform.health;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import org.pytorch.serve.servingsdk.Context;
import org.pytorch.serve.servingsdk.Model;
import org.pytorch.serve.servingsdk.ModelServerEndpoint;
import org.pytorch.serve.servingsdk.Worker;
import org.pytorch.serve.servingsdk.annotations.Endpoint;
import org.pytorch.serve.servingsdk.annotations.helpers.EndpointTypes;
import org.pytorch.serve.servingsdk.http.Request;
import org.pytorch.serve.servingsdk.http.Response;

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
 */
@Endpoint(
        urlPattern = "ping",
        endpointType = EndpointTypes.INFERENCE,
        description = "200 only when every registered model has a worker with its model loaded")
public class TruthfulPing extends ModelServerEndpoint {

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
