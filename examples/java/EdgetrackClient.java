/*
 * EdgetrackClient: a client for `edgetrack serve` in one file, for Java 11 or newer, with no dependency
 * beyond the JDK (copy it into a Micro-Manager or Fiji plugin; add a `package` line there).
 *
 * The protocol is docs/serve-protocol.md: every message is a 20-byte little-endian prefix (magic "ETRK",
 * version, type, JSON length J, payload length P), a UTF-8 JSON header and a raw payload.
 *
 * As a library:
 *
 *     EdgetrackClient.Options options = new EdgetrackClient.Options().port(7878).name("scope1")
 *             .tracker("max_distance", 5.0);
 *     try (EdgetrackClient client = EdgetrackClient.connect(options)) {    // reads the token file itself
 *         for (short[] image : camera) {
 *             client.sendFrame(image, rows, cols);                         // uint16; waits only for flow control
 *             for (EdgetrackClient.Event event : client.poll(0)) { ... }   // Update, Dropped, RemoteError
 *         }
 *         Map<String, Object> summary = client.end();                     // the last updates arrive first
 *         client.writeTracksCsv(Paths.get("tracks.csv"));
 *     }
 *
 * From the command line (tracks a raw movie, as ImageJ's File > Import > Raw reads it, and writes CSV):
 *
 *     javac -d classes EdgetrackClient.java
 *     java -cp classes EdgetrackClient movie.raw --shape 512x512 --dtype uint16 --port 7878 --out tracks.csv
 *     java -cp classes EdgetrackClient --spots detections.csv --port 7878 --out tracks.csv
 *
 * Behaviour, as the Python client (edgetrack.runtime.live.client.TrackClient):
 *  - Authentication: the server's token is read from serve-PORT.token in the per-user runtime folder
 *    (defaultTokenPath), unless Options.token or Options.tokenFile is given.
 *  - Lossless by default: a send waits while queue_frames (from READY) sent frames are neither committed
 *    (UPDATE) nor dropped (DROPPED) nor rejected (ERROR), so the server's queue never overflows.
 *    Options.allowDrops() sends at once instead; the frames the server then drops are counted.
 *  - What the server sends is bounded before anything is allocated: JSON headers of at most 64 KiB and
 *    16 levels, payloads of at most maxMessageMib (256 MiB), UPDATE tables whose size matches their header.
 *  - A receiver thread reads the server's messages as they come; poll() hands them over, or a listener
 *    gets them in that thread. Updates are kept for tracks output unless Options.keep(false).
 */

import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.io.Writer;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/** One connection, one tracking session at a time, on an {@code edgetrack serve} server. Send frames from one
 * thread; poll, ping and the accessors may be called from any thread. */
public final class EdgetrackClient implements AutoCloseable {

    // ------------------------------------------------------------------ the wire format
    /** Message types, client to server. */
    public static final int HELLO = 1, FRAME = 2, SPOTS = 3, END = 4, PING = 5, SHUTDOWN = 6;
    /** Message types, server to client. */
    public static final int READY = 64, UPDATE = 65, DROPPED = 66, ERROR = 67, ENDED = 68, PONG = 69;
    public static final int PROTOCOL_VERSION = 1;
    /** Largest JSON header accepted (and sent), bytes; deepest nesting of objects and arrays accepted. */
    public static final int MAX_JSON_BYTES = 64 * 1024, MAX_JSON_DEPTH = 16;
    private static final byte[] MAGIC = {'E', 'T', 'R', 'K'};
    private static final int PREFIX_BYTES = 20;
    private static final int READ_CHUNK = 1 << 20;
    private static final int POLL_MILLIS = 250;
    /** Pixel types a FRAME may carry, with their size in bytes (little-endian). */
    private static final Map<String, Integer> FRAME_DTYPES = orderedMap(
            "uint8", 1, "uint16", 2, "int16", 2, "uint32", 4, "int32", 4, "float32", 4, "float64", 8);
    /** ERROR codes that answer a request of the calling thread (HELLO, PING, END) and end the wait for it. */
    private static final Set<String> REFUSALS = Set.of("bad_config", "session_active", "not_allowed", "server_busy",
            "unauthorized", "internal_error", "session_failed");
    /** UPDATE columns written first (when present) by writeTracksCsv, after "frame"; the ids as integers. */
    private static final List<String> LEADING = List.of("y", "x", "track_id", "parent_track_id", "det_id",
            "parent_det_id");
    private static final Set<String> ID_COLUMNS = Set.of("track_id", "parent_track_id", "det_id", "parent_det_id");

    // ------------------------------------------------------------------ events
    /** What the receiver thread hands over: an {@link Update}, a {@link Dropped} or a {@link RemoteError}. */
    public interface Event {
    }

    /** A committed frame: its track points, final. {@code values} is row-major, rows x columns.size(). */
    public static final class Update implements Event {
        public final int frame;
        /** The newest frame index tracked when this frame was committed (-1 when the server did not say). */
        public final int latest;
        public final List<String> columns;
        private final double[] values;
        /** System.nanoTime() when the update arrived. */
        public final long receivedNanos;

        Update(int frame, int latest, List<String> columns, double[] values, long receivedNanos) {
            this.frame = frame;
            this.latest = latest;
            this.columns = columns;
            this.values = values;
            this.receivedNanos = receivedNanos;
        }

        public int rows() {
            return values.length / columns.size();
        }

        public double get(int row, int column) {
            return values[row * columns.size() + column];
        }

        /** One column (e.g. "track_id", "y", "x"; px for y and x) as a new array. */
        public double[] column(String name) {
            int j = columns.indexOf(name);
            if (j < 0) {
                throw new IllegalArgumentException("no column '" + name + "' in this update (columns " + columns + ")");
            }
            double[] out = new double[rows()];
            for (int i = 0; i < out.length; i++) {
                out[i] = get(i, j);
            }
            return out;
        }
    }

    /** The server did not track this frame. reason: queue_full, tracking_failed, too_many_detections, abandoned, failed. */
    public static final class Dropped implements Event {
        public final int frame;
        /** Frames dropped so far in this session, as counted by the server. */
        public final long total;
        public final String reason;

        Dropped(int frame, long total, String reason) {
            this.frame = frame;
            this.total = total;
            this.reason = reason;
        }
    }

    /** An ERROR from the server; {@code frame} is null when it concerns no frame; {@code fatal}: the connection closes. */
    public static final class RemoteError implements Event {
        public final String code;
        public final String message;
        public final Integer frame;
        public final boolean fatal;

        RemoteError(String code, String message, Integer frame, boolean fatal) {
            this.code = code;
            this.message = message;
            this.frame = frame;
            this.fatal = fatal;
        }

        @Override
        public String toString() {
            return code + ": " + message;
        }
    }

    /** The server refused a request (HELLO, END, PING); {@code code} is its ERROR code (bad_config, unauthorized, ...). */
    public static final class ServerException extends IOException {
        private static final long serialVersionUID = 1L;
        public final String code;

        ServerException(String code, String message) {
            super(code + ": " + message);
            this.code = code;
        }
    }

    /** What the server sent breaks the protocol or this client's limits; the connection is closed. */
    static final class ProtocolException extends IOException {
        private static final long serialVersionUID = 1L;

        ProtocolException(String message) {
            super(message);
        }
    }

    /** The connection ended; {@code truncated}: in the middle of a message. */
    private static final class ClosedException extends IOException {
        private static final long serialVersionUID = 1L;
        final boolean truncated;

        ClosedException(boolean truncated, String message) {
            super(message);
            this.truncated = truncated;
        }
    }

    // ------------------------------------------------------------------ options
    /** Connection and session options; the setters return this. */
    public static final class Options {
        private String host = "127.0.0.1";
        private int port = 7878;
        private String name = "";
        private final Map<String, Object> tracker = new LinkedHashMap<>();
        private final Map<String, Object> detect = new LinkedHashMap<>();
        private String token;
        private Path tokenFile;
        private double timeoutSeconds = 30.0;
        private double maxMessageMib = 256.0;
        private boolean lossless = true;
        private int maxInFlight;
        private boolean keep = true;
        private Consumer<Event> listener;

        public Options host(String value) {
            host = value;
            return this;
        }

        public Options port(int value) {
            if (value < 1 || value > 65535) {
                throw new IllegalArgumentException("port must be in 1..65535, got " + value);
            }
            port = value;
            return this;
        }

        /** The session's name (in the server's CSV file names). */
        public Options name(String value) {
            name = value;
            return this;
        }

        /** A TrackerConfig option for HELLO (max_distance px, max_gap frames, window frames, linker, ...). */
        public Options tracker(String key, Object value) {
            tracker.put(key, value);
            return this;
        }

        /** A DetectConfig option for HELLO (psf_sigma px, threshold, snr_threshold, ...). */
        public Options detect(String key, Object value) {
            detect.put(key, value);
            return this;
        }

        /** The server's token (default: read from tokenFile). */
        public Options token(String value) {
            token = value;
            return this;
        }

        /** Where to read the token (default: {@link #defaultTokenPath} for the port). */
        public Options tokenFile(Path value) {
            tokenFile = value;
            return this;
        }

        /** Seconds to wait for a reply, a commit (flow control), a whole message, or the server reading a send. */
        public Options timeoutSeconds(double value) {
            if (!(value > 0 && value < 1e6)) {
                throw new IllegalArgumentException("timeout must be in (0, 1e6) s, got " + value);
            }
            timeoutSeconds = value;
            return this;
        }

        /** Largest payload accepted from the server, MiB (a larger announcement closes the connection). */
        public Options maxMessageMib(double value) {
            if (!(value > 0 && value <= 2047)) {
                throw new IllegalArgumentException("maxMessageMib must be in (0, 2047], got " + value);
            }
            maxMessageMib = value;
            return this;
        }

        /** Never wait for the server: frames beyond its queue are dropped by it (DROPPED, counted). */
        public Options allowDrops() {
            lossless = false;
            maxInFlight = 0;
            return this;
        }

        /** Lossless with this many frames in flight at most (default: the server's queue_frames); must exceed the
         * session latency (window - 1). */
        public Options maxInFlight(int value) {
            if (value < 1) {
                throw new IllegalArgumentException("maxInFlight must be >= 1, got " + value);
            }
            lossless = true;
            maxInFlight = value;
            return this;
        }

        /** Keep every update for {@link #updates()} and {@link #writeTracksCsv} (turn off for endless streams). */
        public Options keep(boolean value) {
            keep = value;
            return this;
        }

        /** Receive events in the receiver thread instead of through {@link #poll}. */
        public Options listener(Consumer<Event> value) {
            listener = value;
            return this;
        }
    }

    // ------------------------------------------------------------------ state
    private final Options options;
    private final String token;
    private final Path tokenFile;
    private final long timeoutNanos;
    private final long maxPayload;
    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;
    private final Object sendLock = new Object();
    private final Object flow = new Object();
    private final List<Integer> pending = new ArrayList<>(); // sent frames not yet committed, dropped or rejected
    private int committedUpto = -1;
    private int maxInFlight; // 0: no flow control
    private final BlockingQueue<Event> inbox = new LinkedBlockingQueue<>();
    private final BlockingQueue<Object[]> control = new LinkedBlockingQueue<>(); // {Integer type, Map header}
    private final List<Update> updates = Collections.synchronizedList(new ArrayList<>());
    private final List<Integer> droppedFrames = Collections.synchronizedList(new ArrayList<>());
    private final List<RemoteError> errors = Collections.synchronizedList(new ArrayList<>());
    private final CountDownLatch closed = new CountDownLatch(1);
    private volatile boolean closing;
    private volatile String failure;
    private volatile boolean sending;
    private volatile long sendStartNanos;
    private volatile int nextFrame;
    private volatile Map<String, Object> ready = Map.of();
    private final Thread receiver;

    private EdgetrackClient(Options options, Socket socket) throws IOException {
        this.options = options;
        this.tokenFile = options.tokenFile != null ? options.tokenFile : defaultTokenPath(options.port);
        this.token = options.token != null ? options.token : readTokenFile(tokenFile);
        this.timeoutNanos = (long) (options.timeoutSeconds * 1e9);
        this.maxPayload = (long) (options.maxMessageMib * (1 << 20));
        this.socket = socket;
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
        this.receiver = new Thread(this::receive, "edgetrack-client");
        this.receiver.setDaemon(true);
    }

    /** Connect, send HELLO (token, name, tracker and detect options) and wait for READY. */
    public static EdgetrackClient connect(Options options) throws IOException {
        Socket socket = new Socket();
        int timeoutMillis = (int) Math.min(Integer.MAX_VALUE, options.timeoutSeconds * 1000);
        try {
            socket.connect(new InetSocketAddress(options.host, options.port), timeoutMillis);
            socket.setTcpNoDelay(true);
            socket.setSoTimeout(POLL_MILLIS);
        } catch (IOException e) {
            socket.close();
            throw new ConnectException("cannot connect to edgetrack serve at " + options.host + ":" + options.port
                    + ": " + e.getMessage());
        }
        EdgetrackClient client;
        try {
            client = new EdgetrackClient(options, socket);
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
        client.receiver.start();
        try {
            client.ready = client.hello(options.name, options.tracker, options.detect);
            client.configureFlow();
        } catch (IOException | RuntimeException e) {
            client.close();
            throw e;
        }
        return client;
    }

    // ------------------------------------------------------------------ the token
    /** The per-user folder where {@code edgetrack serve} writes its token files (as the server computes it). */
    public static Path runtimeDir() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        Path home = Paths.get(System.getProperty("user.home"));
        Path base;
        if (os.startsWith("windows")) {
            String appdata = System.getenv("APPDATA");
            base = appdata != null && !appdata.isEmpty() ? Paths.get(appdata) : home.resolve("AppData").resolve("Roaming");
        } else if (os.startsWith("mac") || os.contains("darwin")) {
            base = home.resolve("Library").resolve("Application Support");
        } else {
            String xdg = System.getenv("XDG_DATA_HOME");
            base = xdg != null && !xdg.isEmpty() ? Paths.get(xdg) : home.resolve(".local").resolve("share");
        }
        return base.resolve("edgetrack").resolve("runtime");
    }

    /** Where a server on {@code port} writes its token by default: runtimeDir()/serve-PORT.token. */
    public static Path defaultTokenPath(int port) {
        return runtimeDir().resolve("serve-" + port + ".token");
    }

    /** The token in {@code path}, or null when the file does not exist, cannot be read by this user, or is empty. */
    public static String readTokenFile(Path path) throws IOException {
        try {
            String text = new String(Files.readAllBytes(path), StandardCharsets.US_ASCII).strip();
            return text.isEmpty() ? null : text;
        } catch (NoSuchFileException | AccessDeniedException e) {
            return null;
        }
    }

    // ------------------------------------------------------------------ sending
    private void send(int type, Map<String, Object> header, byte[] payload) throws IOException {
        byte[] body = Json.write(header).getBytes(StandardCharsets.UTF_8);
        if (body.length > MAX_JSON_BYTES) {
            throw new IllegalArgumentException("JSON header of " + body.length + " bytes (at most " + MAX_JSON_BYTES + ")");
        }
        ByteBuffer first = ByteBuffer.allocate(PREFIX_BYTES + body.length).order(ByteOrder.LITTLE_ENDIAN);
        first.put(MAGIC).putShort((short) PROTOCOL_VERSION).putShort((short) type).putInt(body.length)
                .putLong(payload.length).put(body);
        if (isClosed()) {
            throw new IOException("the connection to the server is closed (" + closedReason() + ")");
        }
        synchronized (sendLock) {
            sendStartNanos = System.nanoTime();
            sending = true; // the receiver thread closes the socket when the server does not read for the timeout
            try {
                out.write(first.array());
                if (payload.length > 0) {
                    out.write(payload);
                }
                out.flush();
            } catch (IOException e) {
                throw new IOException("sending to the server failed: " + (failure != null ? failure : e.getMessage()));
            } finally {
                sending = false;
            }
        }
    }

    private Map<String, Object> hello(String name, Map<String, Object> tracker, Map<String, Object> detect)
            throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        header.put("name", name);
        header.put("tracker", tracker);
        header.put("detect", detect);
        if (token != null) {
            header.put("token", token);
        }
        send(HELLO, header, new byte[0]);
        return waitControl(READY, "READY");
    }

    private void configureFlow() throws IOException {
        int latency = ready.containsKey("latency_frames") ? intField(ready, "latency_frames") : 0;
        int wanted = options.maxInFlight > 0 ? options.maxInFlight : options.lossless ? intField(ready, "queue_frames") : 0;
        if (wanted > 0 && wanted <= latency) {
            close();
            throw new IllegalArgumentException("frames in flight (" + wanted + (options.maxInFlight > 0 ? "" :
                    ", the server's queue_frames") + ") must exceed the session latency of " + latency + " frames "
                    + "for lossless sending: use a smaller window, a server with a larger --queue-frames, or allowDrops()");
        }
        synchronized (flow) {
            maxInFlight = wanted;
        }
    }

    /** Send a uint16 image (Java shorts hold the 16 bits), row-major rows x cols; returns its frame index. */
    public int sendFrame(short[] pixels, int rows, int cols) throws IOException {
        return sendFrame(nextFrame, pixels, rows, cols);
    }

    /** Send a uint16 image as frame {@code frame} (indices must increase; skipped frames are empty). */
    public int sendFrame(int frame, short[] pixels, int rows, int cols) throws IOException {
        checkShape(pixels.length, rows, cols);
        ByteBuffer bytes = ByteBuffer.allocate(pixels.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asShortBuffer().put(pixels);
        return sendFrameBytes(frame, bytes.array(), rows, cols, "uint16");
    }

    /** Send a float32 image, row-major rows x cols (finite values only); returns its frame index. */
    public int sendFrame(float[] pixels, int rows, int cols) throws IOException {
        return sendFrame(nextFrame, pixels, rows, cols);
    }

    /** Send a float32 image as frame {@code frame}. */
    public int sendFrame(int frame, float[] pixels, int rows, int cols) throws IOException {
        checkShape(pixels.length, rows, cols);
        for (int i = 0; i < pixels.length; i++) {
            if (!Float.isFinite(pixels[i])) {
                throw new IllegalArgumentException("pixel " + i + " is " + pixels[i] + ": frames must be finite");
            }
        }
        ByteBuffer bytes = ByteBuffer.allocate(pixels.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(pixels);
        return sendFrameBytes(frame, bytes.array(), rows, cols, "float32");
    }

    /** Send an image already in little-endian bytes of {@code dtype} (uint8, uint16, int16, uint32, int32, float32,
     * float64), row-major rows x cols; returns its frame index. */
    public int sendFrameBytes(int frame, byte[] littleEndian, int rows, int cols, String dtype) throws IOException {
        Integer size = FRAME_DTYPES.get(dtype);
        if (size == null) {
            throw new IllegalArgumentException("dtype '" + dtype + "' cannot be sent (use one of "
                    + String.join(", ", FRAME_DTYPES.keySet()) + ")");
        }
        if (rows < 1 || cols < 1 || (long) rows * cols * size != littleEndian.length) {
            throw new IllegalArgumentException(littleEndian.length + " bytes do not hold a " + rows + " x " + cols
                    + " image of " + dtype + " (" + (long) rows * cols * size + " bytes)");
        }
        Map<String, Object> header = new LinkedHashMap<>();
        header.put("frame", frame);
        header.put("shape", List.of(rows, cols));
        header.put("dtype", dtype);
        return sendItem(FRAME, frame, header, littleEndian);
    }

    /** Send the detections of the next frame: {@code values} row-major rows x columns.length, float64; the columns
     * must include "y" and "x" (px) and be the same in every frame. Returns its frame index. */
    public int sendSpots(String[] columns, double[] values, int rows) throws IOException {
        return sendSpots(nextFrame, columns, values, rows);
    }

    /** Send the detections of frame {@code frame}. */
    public int sendSpots(int frame, String[] columns, double[] values, int rows) throws IOException {
        if (columns.length == 0 || rows < 0 || (long) rows * columns.length != values.length) {
            throw new IllegalArgumentException(values.length + " values do not make " + rows + " rows of "
                    + columns.length + " columns " + Arrays.toString(columns));
        }
        ByteBuffer bytes = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asDoubleBuffer().put(values);
        Map<String, Object> header = new LinkedHashMap<>();
        header.put("frame", frame);
        header.put("columns", Arrays.asList(columns));
        header.put("rows", rows);
        return sendItem(SPOTS, frame, header, bytes.array());
    }

    private static void checkShape(int length, int rows, int cols) {
        if (rows < 1 || cols < 1 || (long) rows * cols != length) {
            throw new IllegalArgumentException(length + " pixels do not make a " + rows + " x " + cols + " image");
        }
    }

    private int sendItem(int type, int frame, Map<String, Object> header, byte[] payload) throws IOException {
        if (frame < 0) {
            throw new IllegalArgumentException("frame index must be >= 0, got " + frame);
        }
        waitForRoom();
        synchronized (flow) {
            pending.add(frame); // before sending: the server's answer may come before send() returns
        }
        try {
            send(type, header, payload);
        } catch (IOException | RuntimeException e) {
            synchronized (flow) {
                pending.remove(Integer.valueOf(frame));
            }
            throw e;
        }
        nextFrame = frame + 1;
        return frame;
    }

    private void waitForRoom() throws IOException {
        long deadline = System.nanoTime() + timeoutNanos;
        synchronized (flow) {
            while (maxInFlight > 0 && pending.size() >= maxInFlight) {
                if (isClosed()) {
                    throw new IOException(closedReason());
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new SocketTimeoutException("no frame was committed within " + options.timeoutSeconds
                            + " s (" + maxInFlight + " frames in flight)");
                }
                try {
                    flow.wait(Math.max(1, Math.min(POLL_MILLIS, left / 1_000_000)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("interrupted while waiting for the server to commit frames");
                }
            }
        }
    }

    /** Round trip: the session's counters (received, dropped, tracked, committed, queued, memory_used_mib, ...). */
    public Map<String, Object> ping() throws IOException {
        send(PING, Map.of(), new byte[0]);
        return waitControl(PONG, "PONG");
    }

    /** End the stream: the server commits every frame; returns its summary (ENDED) once all updates are in. */
    public Map<String, Object> end() throws IOException {
        send(END, Map.of(), new byte[0]);
        return waitControl(ENDED, "ENDED");
    }

    /** Start a new session on the same connection (after {@link #end}): frame indices and track ids from 0. */
    public Map<String, Object> restart(String name, Map<String, Object> tracker, Map<String, Object> detect)
            throws IOException {
        synchronized (flow) {
            pending.clear();
            committedUpto = -1;
        }
        nextFrame = 0;
        ready = hello(name, tracker, detect);
        configureFlow();
        return ready;
    }

    /** Ask the server to stop (it ends every session cleanly; it must run with --allow-remote-shutdown). */
    public void shutdownServer() throws IOException {
        send(SHUTDOWN, token != null ? Map.of("token", token) : Map.of(), new byte[0]);
    }

    private Map<String, Object> waitControl(int expected, String name) throws IOException {
        long deadline = System.nanoTime() + timeoutNanos;
        while (true) {
            long left = deadline - System.nanoTime();
            Object[] item;
            try {
                item = control.poll(Math.max(0, Math.min(POLL_MILLIS * 1_000_000L, left)), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while waiting for " + name);
            }
            if (item == null) {
                if (isClosed() && control.isEmpty()) {
                    throw new IOException(closedReason());
                }
                if (left <= 0) {
                    throw new SocketTimeoutException("no " + name + " from the server within " + options.timeoutSeconds + " s");
                }
                continue;
            }
            int type = (Integer) item[0];
            @SuppressWarnings("unchecked")
            Map<String, Object> header = (Map<String, Object>) item[1];
            if (type == expected) {
                return header;
            }
            if (type == ERROR) {
                String code = String.valueOf(header.get("code"));
                String message = String.valueOf(header.get("message"));
                if (code.equals("unauthorized") && token == null) {
                    message += " (no token was found in " + tokenFile + ": is the server on this port, started by "
                            + "this user? pass Options.token or Options.tokenFile)";
                }
                throw new ServerException(code, message);
            }
        }
    }

    // ------------------------------------------------------------------ receiving
    private void receive() {
        try {
            while (!closing) {
                checkSendWatchdog();
                int[] type = new int[1];
                long[] payloadLength = new long[1];
                long[] deadline = new long[1];
                Map<String, Object> header;
                try {
                    header = readHeader(type, payloadLength, deadline);
                } catch (ClosedException e) {
                    if (e.truncated && !closing && failure == null) {
                        failure = e.getMessage();
                    }
                    return;
                } catch (ProtocolException e) {
                    failure = "the server sent a message this client refuses (" + e.getMessage() + ")";
                    return;
                } catch (IOException e) {
                    if (!closing && failure == null) {
                        failure = "connection error: " + e.getMessage();
                    }
                    return;
                }
                try {
                    handle(type[0], header, payloadLength[0], deadline[0]);
                } catch (ProtocolException e) {
                    failure = "the server sent a malformed " + typeName(type[0]) + " message (" + e.getMessage() + ")";
                    return;
                } catch (ClosedException e) {
                    if (!closing && failure == null) {
                        failure = e.getMessage();
                    }
                    return;
                } catch (IOException e) {
                    if (!closing && failure == null) {
                        failure = "connection error: " + e.getMessage();
                    }
                    return;
                } catch (RuntimeException e) {
                    failure = "the event listener failed: " + e;
                    return;
                }
            }
        } finally {
            closed.countDown();
            synchronized (flow) {
                flow.notifyAll();
            }
            if (!closing) { // the byte stream ended or cannot be trusted: let the server see it at once
                closeQuietly();
            }
        }
    }

    private void checkSendWatchdog() {
        if (sending && System.nanoTime() - sendStartNanos > timeoutNanos) {
            failure = "the server did not read what this client sent for " + options.timeoutSeconds + " s";
            closeQuietly(); // unblocks the sending thread
        }
    }

    /** Read one prefix and JSON header; fills type, payload length and the message's deadline (nanoTime). */
    private Map<String, Object> readHeader(int[] type, long[] payloadLength, long[] deadline) throws IOException {
        byte[] prefix = new byte[PREFIX_BYTES];
        int got = readSome(prefix, 0, PREFIX_BYTES, 0, false); // idle wait: no deadline before the first byte
        deadline[0] = System.nanoTime() + timeoutNanos;
        while (got < PREFIX_BYTES) {
            got += readSome(prefix, got, PREFIX_BYTES - got, deadline[0], true);
        }
        ByteBuffer view = ByteBuffer.wrap(prefix).order(ByteOrder.LITTLE_ENDIAN);
        if (!Arrays.equals(Arrays.copyOf(prefix, 4), MAGIC)) {
            throw new ProtocolException("bad_message: bad magic " + Arrays.toString(Arrays.copyOf(prefix, 4))
                    + ", not an edgetrack message");
        }
        int version = Short.toUnsignedInt(view.getShort(4));
        if (version != PROTOCOL_VERSION) {
            throw new ProtocolException("bad_version: protocol version " + version + " (this client speaks 1)");
        }
        type[0] = Short.toUnsignedInt(view.getShort(6));
        long jsonLength = Integer.toUnsignedLong(view.getInt(8));
        long length = view.getLong(12);
        if (jsonLength > MAX_JSON_BYTES) {
            throw new ProtocolException("too_large: JSON header of " + jsonLength + " bytes (at most " + MAX_JSON_BYTES + ")");
        }
        if (length < 0 || length > maxPayload) {
            throw new ProtocolException("too_large: payload of " + Long.toUnsignedString(length) + " bytes announced (at "
                    + "most " + maxPayload + " here, Options.maxMessageMib)");
        }
        payloadLength[0] = length;
        byte[] body = readExact((int) jsonLength, deadline[0]);
        try {
            return Json.parseObject(body);
        } catch (IllegalArgumentException e) {
            throw new ProtocolException("bad_message: " + e.getMessage());
        }
    }

    /** One read of 1..len bytes; on the socket's short timeouts it polls closing, the send watchdog and the deadline. */
    private int readSome(byte[] buffer, int offset, int len, long deadline, boolean started) throws IOException {
        while (true) {
            int k;
            try {
                k = in.read(buffer, offset, len);
            } catch (SocketTimeoutException e) {
                if (closing) {
                    throw new ClosedException(started, "reading was stopped");
                }
                checkSendWatchdog();
                if (deadline != 0 && System.nanoTime() - deadline > 0) {
                    throw new ProtocolException("truncated: a message did not arrive completely within "
                            + options.timeoutSeconds + " s of its first byte");
                }
                continue;
            }
            if (k < 0) {
                throw new ClosedException(started, started ? "the server closed the connection in the middle of a "
                        + "message" : "the server closed the connection");
            }
            if (k > 0) {
                return k;
            }
        }
    }

    /** Exactly n bytes; the buffer grows as bytes arrive (a large announcement followed by little holds little). */
    private byte[] readExact(int n, long deadline) throws IOException {
        byte[] buffer = new byte[Math.min(n, READ_CHUNK)];
        int got = 0;
        while (got < n) {
            if (got == buffer.length) {
                buffer = Arrays.copyOf(buffer, (int) Math.min(n, 2L * buffer.length));
            }
            got += readSome(buffer, got, Math.min(buffer.length - got, READ_CHUNK), deadline, true);
        }
        return buffer;
    }

    private void handle(int type, Map<String, Object> header, long payloadLength, long deadline) throws IOException {
        long now = System.nanoTime();
        if (type == UPDATE) {
            int frame = intField(header, "frame");
            int latest = header.containsKey("latest") ? intField(header, "latest") : -1;
            List<String> columns = columnsField(header);
            long rows = longField(header, "rows");
            if (rows < 0 || rows > Integer.MAX_VALUE / 8 / columns.size()
                    || rows * columns.size() * 8 != payloadLength) {
                throw new ProtocolException("payload of " + payloadLength + " bytes does not match " + rows + " rows x "
                        + columns.size() + " float64 columns");
            }
            ByteBuffer payload = ByteBuffer.wrap(readExact((int) payloadLength, deadline)).order(ByteOrder.LITTLE_ENDIAN);
            double[] values = new double[(int) (rows * columns.size())];
            payload.asDoubleBuffer().get(values);
            emit(new Update(frame, latest, columns, values, now));
            return;
        }
        readExact((int) payloadLength, deadline); // no other message carries a payload; keep the framing
        if (type == DROPPED) {
            long total = header.containsKey("dropped_total") ? longField(header, "dropped_total") : 0;
            Object reason = header.getOrDefault("reason", "queue_full");
            emit(new Dropped(intField(header, "frame"), total, String.valueOf(reason)));
        } else if (type == ERROR) {
            Object frame = header.get("frame");
            Integer index = frame instanceof Long && (Long) frame >= 0 && (Long) frame <= Integer.MAX_VALUE
                    ? Integer.valueOf(((Long) frame).intValue()) : null;
            RemoteError error = new RemoteError(String.valueOf(header.get("code")), String.valueOf(header.get("message")),
                    index, Boolean.TRUE.equals(header.get("fatal")));
            emit(error);
            if (error.fatal || REFUSALS.contains(error.code)) {
                control.add(new Object[]{ERROR, header});
            }
        } else if (type == READY || type == ENDED || type == PONG) {
            control.add(new Object[]{type, header});
        } // other types: not in protocol version 1; ignored
    }

    private void emit(Event event) {
        settle(event);
        if (event instanceof Update) {
            if (options.keep) {
                updates.add((Update) event);
            }
        } else if (event instanceof Dropped) {
            droppedFrames.add(((Dropped) event).frame);
        } else {
            errors.add((RemoteError) event);
        }
        if (options.listener != null) {
            options.listener.accept(event);
        } else {
            inbox.add(event);
        }
    }

    /** Flow control: a committed frame settles every frame up to it; a dropped or rejected frame settles itself. */
    private void settle(Event event) {
        synchronized (flow) {
            if (event instanceof Update) {
                committedUpto = Math.max(committedUpto, ((Update) event).frame);
                pending.removeIf(f -> f <= committedUpto);
            } else {
                Integer frame = event instanceof Dropped ? Integer.valueOf(((Dropped) event).frame) : ((RemoteError) event).frame;
                if (frame != null && frame > committedUpto) {
                    pending.remove(frame);
                }
            }
            flow.notifyAll();
        }
    }

    // ------------------------------------------------------------------ what the client received
    /** Events received since the last poll, waiting up to {@code timeoutMillis} for the first one. */
    public List<Event> poll(long timeoutMillis) throws InterruptedException {
        List<Event> events = new ArrayList<>();
        Event first = timeoutMillis > 0 ? inbox.poll(timeoutMillis, TimeUnit.MILLISECONDS) : inbox.poll();
        if (first != null) {
            events.add(first);
            inbox.drainTo(events);
        }
        return events;
    }

    /** The READY header of the current session (queue_frames, latency_frames, limits, tracker and detect settings). */
    public Map<String, Object> ready() {
        return ready;
    }

    /** Every update received so far, in order (with Options.keep, the default). */
    public List<Update> updates() {
        synchronized (updates) {
            return new ArrayList<>(updates);
        }
    }

    /** The frames the server reported DROPPED, in order. */
    public List<Integer> droppedFrames() {
        synchronized (droppedFrames) {
            return new ArrayList<>(droppedFrames);
        }
    }

    /** Every ERROR received, in order. */
    public List<RemoteError> errors() {
        synchronized (errors) {
            return new ArrayList<>(errors);
        }
    }

    /** Frames sent that are neither committed, nor dropped, nor rejected. */
    public int inFlight() {
        synchronized (flow) {
            return pending.size();
        }
    }

    /** The index the next frame gets when none is given. */
    public int nextFrame() {
        return nextFrame;
    }

    /** Why the receiver stopped when it was not a normal close (null otherwise). */
    public String failure() {
        return failure;
    }

    public boolean isClosed() {
        return closed.getCount() == 0;
    }

    private String closedReason() {
        synchronized (errors) {
            for (int i = errors.size() - 1; i >= 0; i--) {
                if (errors.get(i).fatal) {
                    return "the server closed the connection (" + errors.get(i) + ")";
                }
            }
        }
        return failure != null ? "the connection was closed: " + failure : "the server closed the connection";
    }

    /** Write every update kept as CSV: frame, y, x, track_id, parent_track_id, det_id, parent_det_id (present ones;
     * ids as integers), then the features in the server's order; y and x in px. Empty cells for NaN. */
    public void writeTracksCsv(Writer writer) throws IOException {
        List<Update> all = updates();
        List<String> columns = all.isEmpty() ? List.of("y", "x", "track_id") : all.get(0).columns;
        List<Integer> order = new ArrayList<>();
        for (String name : LEADING) {
            if (columns.contains(name)) {
                order.add(columns.indexOf(name));
            }
        }
        for (int j = 0; j < columns.size(); j++) {
            if (!order.contains(j)) {
                order.add(j);
            }
        }
        StringBuilder line = new StringBuilder("frame");
        for (int j : order) {
            line.append(',').append(columns.get(j));
        }
        writer.write(line.append('\n').toString());
        for (Update update : all) {
            if (!update.columns.equals(columns)) {
                throw new IllegalStateException("frame " + update.frame + " has columns " + update.columns + ", not "
                        + columns + " (updates of several sessions?)");
            }
            for (int i = 0; i < update.rows(); i++) {
                line.setLength(0);
                line.append(update.frame);
                for (int j : order) {
                    double v = update.get(i, j);
                    line.append(',');
                    if (ID_COLUMNS.contains(columns.get(j))) {
                        line.append((long) v);
                    } else if (Double.isNaN(v)) {
                        line.append("");
                    } else if (Double.isInfinite(v)) {
                        line.append(v > 0 ? "inf" : "-inf");
                    } else {
                        line.append(v); // Double.toString: the shortest text that reads back as the same double
                    }
                }
                writer.write(line.append('\n').toString());
            }
        }
        writer.flush();
    }

    /** {@link #writeTracksCsv(Writer)} to a file (replaced). */
    public void writeTracksCsv(Path path) throws IOException {
        try (BufferedWriter writer = Files.newBufferedWriter(path, StandardCharsets.UTF_8)) {
            writeTracksCsv(writer);
        }
    }

    // ------------------------------------------------------------------ closing
    /** Close the connection (the server then commits and ends the session on its side). */
    @Override
    public void close() {
        closing = true;
        try {
            socket.shutdownOutput(); // end of stream for the server, as after a crash: nothing committed is lost
        } catch (IOException e) {
            // already closed
        }
        closeQuietly(); // unblocks the receiver thread at once
        if (Thread.currentThread() != receiver) {
            try {
                receiver.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void closeQuietly() {
        try {
            socket.close();
        } catch (IOException e) {
            // nothing more to do
        }
    }

    // ------------------------------------------------------------------ header fields
    private static long longField(Map<String, Object> header, String key) throws ProtocolException {
        Object value = header.get(key);
        if (!(value instanceof Long)) {
            throw new ProtocolException("'" + key + "' must be an integer, got " + Json.write(value));
        }
        return (Long) value;
    }

    private static int intField(Map<String, Object> header, String key) throws ProtocolException {
        long value = longField(header, key);
        if (value < Integer.MIN_VALUE || value > Integer.MAX_VALUE) {
            throw new ProtocolException("'" + key + "' = " + value + " is out of range");
        }
        return (int) value;
    }

    private static List<String> columnsField(Map<String, Object> header) throws ProtocolException {
        Object value = header.get("columns");
        if (value instanceof List && !((List<?>) value).isEmpty()) {
            List<String> names = new ArrayList<>();
            for (Object item : (List<?>) value) {
                if (!(item instanceof String) || ((String) item).isEmpty()) {
                    names = null;
                    break;
                }
                names.add((String) item);
            }
            if (names != null && new HashSet<>(names).size() == names.size()) {
                return Collections.unmodifiableList(names);
            }
        }
        String text = Json.write(value);
        throw new ProtocolException("'columns' must be a list of distinct names, got "
                + (text.length() > 200 ? text.substring(0, 200) + "..." : text));
    }

    private static String typeName(int type) {
        switch (type) {
            case READY: return "READY";
            case UPDATE: return "UPDATE";
            case DROPPED: return "DROPPED";
            case ERROR: return "ERROR";
            case ENDED: return "ENDED";
            case PONG: return "PONG";
            default: return "type " + type;
        }
    }

    private static Map<String, Integer> orderedMap(Object... keysAndValues) {
        Map<String, Integer> map = new LinkedHashMap<>();
        for (int i = 0; i < keysAndValues.length; i += 2) {
            map.put((String) keysAndValues[i], (Integer) keysAndValues[i + 1]);
        }
        return Collections.unmodifiableMap(map);
    }

    // ------------------------------------------------------------------ JSON (the small subset headers need)
    /**
     * JSON text to and from Java values: objects are Map (insertion order), arrays List, strings String, integers
     * Long, other numbers Double, true/false Boolean, null null. Strict RFC 8259 grammar; no NaN or Infinity.
     */
    static final class Json {
        private final String text;
        private int pos;
        private int depth;

        private Json(String text) {
            this.text = text;
        }

        /** Parse a header: UTF-8 bytes holding one JSON object (empty bytes: an empty object). */
        static Map<String, Object> parseObject(byte[] utf8) {
            if (utf8.length == 0) {
                return new LinkedHashMap<>();
            }
            String text;
            try {
                CharBuffer chars = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(utf8));
                text = chars.toString();
            } catch (CharacterCodingException e) {
                throw new IllegalArgumentException("JSON header is not valid UTF-8");
            }
            Json parser = new Json(text);
            parser.skipSpace();
            if (parser.pos >= text.length() || text.charAt(parser.pos) != '{') {
                throw new IllegalArgumentException("JSON header must be an object");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> value = (Map<String, Object>) parser.value();
            parser.skipSpace();
            if (parser.pos != text.length()) {
                throw parser.error("unexpected text after the object");
            }
            return value;
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("JSON header: " + what + " at character " + pos);
        }

        private void skipSpace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        private char peek() {
            if (pos >= text.length()) {
                throw error("unexpected end");
            }
            return text.charAt(pos);
        }

        private Object value() {
            skipSpace();
            char c = peek();
            if (c == '{' || c == '[') {
                if (++depth > MAX_JSON_DEPTH) {
                    throw error("nested more than " + MAX_JSON_DEPTH + " levels deep");
                }
                Object nested = c == '{' ? object() : array();
                depth--;
                return nested;
            }
            if (c == '"') {
                return string();
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                return number();
            }
            if (text.startsWith("true", pos)) {
                pos += 4;
                return Boolean.TRUE;
            }
            if (text.startsWith("false", pos)) {
                pos += 5;
                return Boolean.FALSE;
            }
            if (text.startsWith("null", pos)) {
                pos += 4;
                return null;
            }
            throw error("unexpected character '" + c + "'");
        }

        private Map<String, Object> object() {
            Map<String, Object> map = new LinkedHashMap<>();
            if (empty('}')) {
                return map;
            }
            do {
                skipSpace();
                if (peek() != '"') {
                    throw error("expected a key");
                }
                String key = string();
                skipSpace();
                if (peek() != ':') {
                    throw error("expected ':'");
                }
                pos++;
                map.put(key, value());
            } while (another('}'));
            return map;
        }

        private List<Object> array() {
            List<Object> list = new ArrayList<>();
            if (empty(']')) {
                return list;
            }
            do {
                list.add(value());
            } while (another(']'));
            return list;
        }

        /** Past the opening bracket; true (and past the closing one too) when nothing is inside. */
        private boolean empty(char close) {
            pos++;
            skipSpace();
            if (peek() != close) {
                return false;
            }
            pos++;
            return true;
        }

        /** After an element: true past a ',' (another element follows), false past the closing bracket. */
        private boolean another(char close) {
            skipSpace();
            char c = peek();
            pos++;
            if (c == close) {
                return false;
            }
            if (c != ',') {
                throw error("expected ',' or '" + close + "'");
            }
            return true;
        }

        private String string() {
            StringBuilder out = new StringBuilder();
            pos++; // '"'
            while (true) {
                char c = peek();
                pos++;
                if (c == '"') {
                    return out.toString();
                }
                if (c < 0x20) {
                    throw error("control character in a string");
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char e = peek();
                pos++;
                switch (e) {
                    case '"': out.append('"'); break;
                    case '\\': out.append('\\'); break;
                    case '/': out.append('/'); break;
                    case 'b': out.append('\b'); break;
                    case 'f': out.append('\f'); break;
                    case 'n': out.append('\n'); break;
                    case 'r': out.append('\r'); break;
                    case 't': out.append('\t'); break;
                    case 'u':
                        if (pos + 4 > text.length()) {
                            throw error("short \\u escape");
                        }
                        int code = 0;
                        for (int k = 0; k < 4; k++) {
                            int digit = Character.digit(text.charAt(pos + k), 16);
                            if (digit < 0) {
                                throw error("bad \\u escape");
                            }
                            code = code * 16 + digit;
                        }
                        pos += 4;
                        out.append((char) code); // surrogate pairs arrive as two escapes: UTF-16, as Java strings
                        break;
                    default:
                        throw error("bad escape '\\" + e + "'");
                }
            }
        }

        private Object number() {
            int start = pos;
            if (text.charAt(pos) == '-') {
                pos++;
            }
            if (peek() == '0') {
                pos++;
            } else if (!digits()) {
                throw error("bad number");
            }
            boolean integer = true;
            if (pos < text.length() && text.charAt(pos) == '.') {
                pos++;
                integer = false;
                if (!digits()) {
                    throw error("bad number");
                }
            }
            if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
                pos++;
                integer = false;
                if (pos < text.length() && (text.charAt(pos) == '+' || text.charAt(pos) == '-')) {
                    pos++;
                }
                if (!digits()) {
                    throw error("bad number");
                }
            }
            String literal = text.substring(start, pos);
            if (integer) {
                try {
                    return Long.parseLong(literal);
                } catch (NumberFormatException e) {
                    throw error("integer " + literal + " out of range");
                }
            }
            double value = Double.parseDouble(literal);
            if (Double.isInfinite(value)) {
                throw error("number " + literal + " out of range");
            }
            return value;
        }

        private boolean digits() {
            int start = pos;
            while (pos < text.length() && text.charAt(pos) >= '0' && text.charAt(pos) <= '9') {
                pos++;
            }
            return pos > start;
        }

        /** JSON text of a Map, List (or Object[]), String, Number, Boolean or null. */
        static String write(Object value) {
            StringBuilder out = new StringBuilder();
            write(value, out);
            return out.toString();
        }

        private static void write(Object value, StringBuilder out) {
            if (value == null) {
                out.append("null");
            } else if (value instanceof String) {
                quote((String) value, out);
            } else if (value instanceof Boolean) {
                out.append(value);
            } else if (value instanceof Double || value instanceof Float) {
                double v = ((Number) value).doubleValue();
                if (!Double.isFinite(v)) {
                    throw new IllegalArgumentException("JSON has no " + v + " (options must be finite numbers)");
                }
                out.append(v);
            } else if (value instanceof Long || value instanceof Integer || value instanceof Short
                    || value instanceof Byte) {
                out.append(((Number) value).longValue());
            } else if (value instanceof Map) {
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    quote(String.valueOf(entry.getKey()), out);
                    out.append(':');
                    write(entry.getValue(), out);
                }
                out.append('}');
            } else if (value instanceof List || value instanceof Object[]) {
                List<?> items = value instanceof List ? (List<?>) value : Arrays.asList((Object[]) value);
                out.append('[');
                for (int i = 0; i < items.size(); i++) {
                    if (i > 0) {
                        out.append(',');
                    }
                    write(items.get(i), out);
                }
                out.append(']');
            } else {
                throw new IllegalArgumentException("cannot write a " + value.getClass().getName() + " as JSON");
            }
        }

        private static void quote(String s, StringBuilder out) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c == '"' || c == '\\') {
                    out.append('\\').append(c);
                } else if (c < 0x20) {
                    out.append(String.format("\\u%04x", (int) c));
                } else {
                    out.append(c);
                }
            }
            out.append('"');
        }
    }

    // ------------------------------------------------------------------ command line
    private static final String USAGE = String.join("\n",
            "usage: java EdgetrackClient MOVIE.raw --shape ROWSxCOLS [--dtype uint16] [options]",
            "       java EdgetrackClient --spots SPOTS.csv [options]",
            "Tracks a movie with a running `edgetrack serve` and writes the tracks it returns.",
            "  MOVIE.raw          frames of pixels, no header, one after the other (ImageJ: File > Save As > Raw Data)",
            "  --shape ROWSxCOLS  size of one frame, px;  --dtype  uint8, uint16 (default), int16, uint32, int32,",
            "                     float32 or float64;  --big-endian  pixels in big-endian byte order (ImageJ's default",
            "                     for raw files) instead of little-endian",
            "  --spots FILE       CSV of detections instead (header: frame,y,x[,features]; y, x in px)",
            "  --port P           server port (default 7878);  --host H  (default 127.0.0.1)",
            "  --token-file F     the server's token file (default: serve-P.token in the per-user runtime folder)",
            "  --out FILE         CSV of the tracks received (frame,y,x,track_id,...)",
            "  --max-distance PX  largest displacement per frame, px (default 5)",
            "  --name NAME        session name (default java)",
            "  --allow-drops      do not wait for the server: frames it cannot keep up with are dropped (counted)",
            "  --quiet            print nothing but errors");

    /** Command-line entry point; exit status 0 on success, 1 on a failure, 2 on bad arguments. */
    public static void main(String[] args) {
        int status;
        try {
            status = run(args);
        } catch (IllegalArgumentException e) {
            System.err.println("EdgetrackClient: error: " + e.getMessage());
            status = 2;
        } catch (IOException | RuntimeException e) {
            System.err.println("EdgetrackClient: error: " + e.getMessage());
            status = 1;
        }
        System.exit(status);
    }

    private static int run(String[] args) throws IOException {
        Map<String, String> flags = new LinkedHashMap<>();
        List<String> positional = new ArrayList<>();
        Set<String> switches = Set.of("--allow-drops", "--quiet", "--big-endian");
        Set<String> valued = Set.of("--shape", "--dtype", "--spots", "--port", "--host", "--token-file", "--out",
                "--max-distance", "--name");
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (arg.equals("-h") || arg.equals("--help")) {
                System.out.println(USAGE);
                return 0;
            } else if (switches.contains(arg)) {
                flags.put(arg, "");
            } else if (valued.contains(arg)) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(arg + " needs a value (--help for usage)");
                }
                flags.put(arg, args[++i]);
            } else if (arg.startsWith("--")) {
                throw new IllegalArgumentException("unknown option " + arg + " (--help for usage)");
            } else {
                positional.add(arg);
            }
        }
        boolean spots = flags.containsKey("--spots");
        if (spots ? !positional.isEmpty() : positional.size() != 1) {
            throw new IllegalArgumentException("give one MOVIE.raw, or --spots FILE (--help for usage)");
        }
        boolean quiet = flags.containsKey("--quiet");
        Options options = new Options().host(flags.getOrDefault("--host", "127.0.0.1"))
                .port(parseInt(flags.getOrDefault("--port", "7878"), "--port"))
                .name(flags.getOrDefault("--name", "java"))
                .tracker("max_distance", parseDouble(flags.getOrDefault("--max-distance", "5"), "--max-distance"));
        if (flags.containsKey("--token-file")) {
            options.tokenFile(Paths.get(flags.get("--token-file")));
        }
        if (flags.containsKey("--allow-drops")) {
            options.allowDrops();
        }
        MovieSource source = spots ? SpotsFile.read(Paths.get(flags.get("--spots")))
                : RawMovie.open(Paths.get(positional.get(0)), flags.get("--shape"), flags.getOrDefault("--dtype", "uint16"),
                        flags.containsKey("--big-endian"));
        long points = 0;
        Set<Long> tracks = new HashSet<>();
        Map<String, Object> summary;
        int total = source.count();
        long start;
        double seconds;
        List<Integer> dropped;
        try (MovieSource items = source; EdgetrackClient client = connect(options)) {
            start = System.nanoTime();
            long lastReport = start;
            for (int i = 0; i < total; i++) {
                items.send(client, i);
                printErrors(client);
                long now = System.nanoTime();
                if (!quiet && now - lastReport > 2_000_000_000L) {
                    System.err.printf(Locale.ROOT, "  sent %d of %d frames (%.1f frames/s)%n", i + 1, total,
                            (i + 1) / ((now - start) / 1e9));
                    lastReport = now;
                }
            }
            summary = client.end();
            seconds = (System.nanoTime() - start) / 1e9;
            printErrors(client);
            for (Update update : client.updates()) {
                points += update.rows();
                int j = update.columns.indexOf("track_id");
                for (int r = 0; j >= 0 && r < update.rows(); r++) {
                    tracks.add((long) update.get(r, j));
                }
            }
            dropped = client.droppedFrames();
            if (flags.containsKey("--out")) {
                client.writeTracksCsv(Paths.get(flags.get("--out")));
            }
        }
        Object droppedByServer = summary.get("frames_dropped");
        if (!quiet) {
            System.err.printf(Locale.ROOT, "sent %d frames in %.3f s (%.1f frames/s, %s); tracked %s, dropped %s "
                            + "(DROPPED messages: %d); %d points in %d tracks%n", total, seconds, total / seconds,
                    options.lossless ? "lossless" : "drops allowed", summary.get("frames_tracked"), droppedByServer,
                    dropped.size(), points, tracks.size());
        }
        if (!dropped.isEmpty()) {
            System.err.println("warning: " + dropped.size() + " of " + total + " frames were dropped by the server "
                    + "(frames " + dropped.subList(0, Math.min(10, dropped.size())) + (dropped.size() > 10 ? " ..." : "")
                    + "); run without --allow-drops to lose none");
        }
        return 0;
    }

    /** Print the server's ERRORs received so far (the other events are kept by the client). */
    private static void printErrors(EdgetrackClient client) {
        for (Event event = client.inbox.poll(); event != null; event = client.inbox.poll()) {
            if (event instanceof RemoteError) {
                System.err.println("server: " + event);
            }
        }
    }

    private static int parseInt(String text, String flag) {
        try {
            return Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(flag + " must be an integer, got '" + text + "'");
        }
    }

    private static double parseDouble(String text, String flag) {
        try {
            double value = Double.parseDouble(text);
            if (Double.isFinite(value)) {
                return value;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(flag + " must be a finite number, got '" + text + "'");
    }

    /** What the command line sends: frames of a raw movie or the detections of a CSV file, one item per frame. */
    private interface MovieSource extends AutoCloseable {
        int count();

        void send(EdgetrackClient client, int item) throws IOException;

        @Override
        void close() throws IOException;
    }

    /** A headerless raw movie: frames of rows x cols pixels, one after the other (little- or big-endian). */
    private static final class RawMovie implements MovieSource {
        private final DataInputStream stream;
        private final int rows, cols, frames;
        private final String dtype;
        private final boolean bigEndian;
        private final byte[] buffer;

        private RawMovie(DataInputStream stream, int rows, int cols, int frames, String dtype, boolean bigEndian) {
            this.stream = stream;
            this.rows = rows;
            this.cols = cols;
            this.frames = frames;
            this.dtype = dtype;
            this.bigEndian = bigEndian;
            this.buffer = new byte[rows * cols * FRAME_DTYPES.get(dtype)];
        }

        static RawMovie open(Path path, String shape, String dtype, boolean bigEndian) throws IOException {
            if (shape == null) {
                throw new IllegalArgumentException("a raw movie needs --shape ROWSxCOLS (the size of one frame, px)");
            }
            String[] parts = shape.toLowerCase(Locale.ROOT).split("x", -1);
            if (parts.length != 2) {
                throw new IllegalArgumentException("--shape must be ROWSxCOLS (e.g. 512x512), got '" + shape + "'");
            }
            int rows = parseInt(parts[0], "--shape rows");
            int cols = parseInt(parts[1], "--shape columns");
            Integer size = FRAME_DTYPES.get(dtype);
            if (size == null) {
                throw new IllegalArgumentException("--dtype must be one of " + String.join(", ", FRAME_DTYPES.keySet())
                        + ", got '" + dtype + "'");
            }
            if (rows < 1 || cols < 1 || (long) rows * cols * size > Integer.MAX_VALUE - 64) {
                throw new IllegalArgumentException("--shape " + shape + " is not a frame size this client can send");
            }
            long frameBytes = (long) rows * cols * size;
            long fileBytes;
            try {
                fileBytes = Files.size(path);
            } catch (NoSuchFileException e) {
                throw new IllegalArgumentException("movie file not found: " + path);
            }
            if (fileBytes == 0 || fileBytes % frameBytes != 0) {
                throw new IllegalArgumentException(path + " has " + fileBytes + " bytes: not a whole number of "
                        + rows + "x" + cols + " " + dtype + " frames (" + frameBytes + " bytes each)");
            }
            if (fileBytes / frameBytes > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(path + " holds more frames than this client can index");
            }
            DataInputStream stream = new DataInputStream(new BufferedInputStream(Files.newInputStream(path), 1 << 20));
            return new RawMovie(stream, rows, cols, (int) (fileBytes / frameBytes), dtype, bigEndian);
        }

        @Override
        public int count() {
            return frames;
        }

        @Override
        public void send(EdgetrackClient client, int item) throws IOException {
            try {
                stream.readFully(buffer);
            } catch (EOFException e) {
                throw new IOException("the movie file ended before frame " + item);
            }
            int size = FRAME_DTYPES.get(dtype);
            for (int i = 0; bigEndian && size > 1 && i < buffer.length; i += size) { // to little-endian, in place
                for (int a = i, b = i + size - 1; a < b; a++, b--) {
                    byte t = buffer[a];
                    buffer[a] = buffer[b];
                    buffer[b] = t;
                }
            }
            client.sendFrameBytes(item, buffer, rows, cols, dtype);
        }

        @Override
        public void close() throws IOException {
            stream.close();
        }
    }

    /** Detections from a CSV file with a header (frame, y, x and numeric features), grouped by frame. */
    private static final class SpotsFile implements MovieSource {
        private final String[] columns;
        private final List<Integer> frames;
        private final List<double[]> tables;

        private SpotsFile(String[] columns, List<Integer> frames, List<double[]> tables) {
            this.columns = columns;
            this.frames = frames;
            this.tables = tables;
        }

        static SpotsFile read(Path path) throws IOException {
            List<String> lines;
            try (BufferedReader reader = Files.newBufferedReader(path, StandardCharsets.UTF_8)) {
                lines = new ArrayList<>();
                for (String line = reader.readLine(); line != null; line = reader.readLine()) {
                    if (!line.isBlank()) {
                        lines.add(line);
                    }
                }
            } catch (NoSuchFileException e) {
                throw new IllegalArgumentException("spots file not found: " + path);
            }
            if (lines.isEmpty()) {
                throw new IllegalArgumentException(path + " is empty (expected a header frame,y,x,...)");
            }
            String[] header = lines.get(0).split(",", -1);
            List<String> names = new ArrayList<>();
            List<Integer> keep = new ArrayList<>();
            int frameColumn = -1;
            for (int j = 0; j < header.length; j++) {
                String name = header[j].strip();
                if (name.contains("\"")) {
                    throw new IllegalArgumentException(path + ": quoted CSV fields are not supported (" + name + ")");
                }
                if (name.equals("frame")) {
                    frameColumn = j;
                } else if (!name.equals("track_id") && !name.equals("particle")) {
                    names.add(name);
                    keep.add(j);
                }
            }
            if (frameColumn < 0 || !names.contains("y") || !names.contains("x")) {
                throw new IllegalArgumentException(path + ": the header must name the columns frame, y and x, got "
                        + lines.get(0));
            }
            TreeMap<Integer, List<double[]>> byFrame = new TreeMap<>();
            for (int n = 1; n < lines.size(); n++) {
                String[] cells = lines.get(n).split(",", -1);
                if (cells.length != header.length) {
                    throw new IllegalArgumentException(path + " line " + (n + 1) + ": " + cells.length + " fields, the "
                            + "header has " + header.length);
                }
                double frame = parseCell(cells[frameColumn], path, n, "frame");
                if (frame < 0 || frame != Math.rint(frame) || frame > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException(path + " line " + (n + 1) + ": frame must be a whole number >= 0, "
                            + "got " + cells[frameColumn]);
                }
                double[] row = new double[names.size()];
                for (int k = 0; k < row.length; k++) {
                    row[k] = parseCell(cells[keep.get(k)], path, n, names.get(k));
                }
                byFrame.computeIfAbsent((int) frame, f -> new ArrayList<>()).add(row);
            }
            List<Integer> frames = new ArrayList<>(byFrame.keySet());
            List<double[]> tables = new ArrayList<>();
            for (List<double[]> rows : byFrame.values()) {
                double[] table = new double[rows.size() * names.size()];
                for (int i = 0; i < rows.size(); i++) {
                    System.arraycopy(rows.get(i), 0, table, i * names.size(), names.size());
                }
                tables.add(table);
            }
            if (frames.isEmpty()) {
                throw new IllegalArgumentException(path + " has a header but no detections");
            }
            return new SpotsFile(names.toArray(new String[0]), frames, tables);
        }

        private static double parseCell(String cell, Path path, int line, String column) {
            String text = cell.strip();
            if (text.isEmpty() || text.equalsIgnoreCase("nan")) {
                return Double.NaN;
            }
            try {
                if (text.matches("[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?")) {
                    return Double.parseDouble(text);
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw new IllegalArgumentException(path + " line " + (line + 1) + ": " + column + " is not a number: '"
                    + cell + "'");
        }

        @Override
        public int count() {
            return frames.size();
        }

        @Override
        public void send(EdgetrackClient client, int item) throws IOException {
            double[] table = tables.get(item);
            client.sendSpots(frames.get(item), columns, table, table.length / columns.length);
        }

        @Override
        public void close() {
            // nothing held
        }
    }
}
