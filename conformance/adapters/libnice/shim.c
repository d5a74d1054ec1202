/*
 * libnice IUT shim for ice-conformance: the adapter contract (docs/adapter-contract.md) as JSON-RPC 2.0,
 * one JSON object per line, on stdin (requests) and stdout (responses and notifications). stderr is free text.
 *
 * Theory of operation: one GLib main loop runs everything. A GIOChannel watch on fd 0 reads request lines
 * (non-blocking, so a partial line never stalls libnice's timers); each request is answered at once, except
 * `gather` without trickle (answered on `candidate-gathering-done`) and `close` (answered when
 * nice_agent_close_async has released TURN allocations). libnice signals become notifications.
 *
 * Mapping decisions (see conformance/adapters/libnice/__init__.py for the full list):
 *  - `connect` is the trigger for connectivity checks: remote candidates from `set_remote` and from
 *    `add_remote_candidate` are buffered until `connect`, then handed to nice_agent_set_remote_candidates.
 *    Remote credentials are set at `set_remote` already, so the agent can answer (and trigger checks for)
 *    checks that arrive before `connect`, as RFC 8445 section 7.3 expects.
 *  - With trickle, `gather` answers at once with no candidates; every local candidate then arrives as a
 *    `candidate` notification, and `null` marks the end of gathering.
 *  - `state` is the agent's aggregate over its components (failed if any failed, else the least advanced),
 *    with `component` and `native` (the libnice state name) of the change that caused it.
 *
 * Build: gcc -O1 -Wall -Wextra -DSHIM_LIBNICE_VERSION='"0.1.21"' -DSHIM_CAPABILITIES_JSON='"[...]"' shim.c \
 *        $(pkg-config --cflags --libs nice json-glib-1.0)
 * (conformance.adapters.libnice.ensure_built does this and caches the binary.)
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#include <nice/agent.h>

#ifndef SHIM_LIBNICE_VERSION
#error "define SHIM_LIBNICE_VERSION (pkg-config --modversion nice) as a C string"
#endif
#ifndef SHIM_CAPABILITIES_JSON
#error "define SHIM_CAPABILITIES_JSON (the capabilities array of capabilities.json) as a C string"
#endif

#define CONTRACT_VERSION "1.0"

#define ERR_PARSE (-32700)
#define ERR_INVALID_REQUEST (-32600)
#define ERR_METHOD_NOT_FOUND (-32601)
#define ERR_INVALID_PARAMS (-32602)
#define ERR_INTERNAL (-32603)      /* a libnice call failed */
#define ERR_INVALID_STATE (-32000) /* not valid in the agent's current state */
#define ERR_UNKNOWN_AGENT (-32001)

typedef struct {
  gchar *id;
  NiceAgent *agent;
  guint stream_id;
  guint n_components;
  gboolean trickle;
  gboolean connected;     /* connect was called since creation or the last restart */
  gboolean remote_eoc;    /* end of remote candidates seen (set_remote without trickle, or null) */
  gboolean gather_called; /* gather was called */
  gboolean remote_set;    /* set_remote was called since creation or the last restart */
  gboolean gathering_done;
  gboolean closing;
  JsonNode *pending_gather; /* request id of a gather waiting for candidate-gathering-done */
  JsonNode *pending_close;  /* request id of a close waiting for nice_agent_close_async */
  GSList *pending_remote;   /* NiceCandidate*, buffered until connect */
  guint *comp_state;        /* NiceComponentState per component, index 0 = component 1 */
  gchar *last_state;        /* last aggregate state notified */
} ShimAgent;

static FILE *proto_out;  /* the protocol stream: the original stdout; fd 1 itself points to stderr */
static GMainLoop *loop;
static GHashTable *agents; /* id -> ShimAgent* */
static gboolean quitting;  /* shutdown answered: read no further requests */
static guint next_agent = 1;

/* ------------------------------------------------------------------------------------------------ output */

static void
write_node (JsonNode *root)
{
  JsonGenerator *gen = json_generator_new ();
  gchar *text;

  json_generator_set_pretty (gen, FALSE);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  fputs (text, proto_out);
  fputc ('\n', proto_out);
  fflush (proto_out);
  g_debug ("< %s", text);
  g_free (text);
  g_object_unref (gen);
}

/* Takes ownership of result (may be NULL for an empty object). */
static void
reply_result (JsonNode *id, JsonObject *result)
{
  JsonObject *msg = json_object_new ();
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (msg, "jsonrpc", "2.0");
  json_object_set_member (msg, "id", id ? json_node_copy (id) : json_node_new (JSON_NODE_NULL));
  json_object_set_object_member (msg, "result", result ? result : json_object_new ());
  json_node_take_object (root, msg);
  write_node (root);
  json_node_unref (root);
}

static void
reply_error (JsonNode *id, gint code, const gchar *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
reply_error (JsonNode *id, gint code, const gchar *fmt, ...)
{
  JsonObject *msg = json_object_new ();
  JsonObject *err = json_object_new ();
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);
  va_list ap;
  gchar *raw, *valid, *text;

  va_start (ap, fmt);
  raw = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  /* The message may quote the offending input: keep it valid UTF-8 and short. */
  valid = g_utf8_make_valid (raw, -1);
  text = g_utf8_strlen (valid, -1) > 300 ? g_utf8_substring (valid, 0, 300) : g_strdup (valid);
  g_free (raw);
  g_free (valid);
  g_message ("error %d: %s", code, text);
  json_object_set_int_member (err, "code", code);
  json_object_set_string_member (err, "message", text);
  g_free (text);
  json_object_set_string_member (msg, "jsonrpc", "2.0");
  json_object_set_member (msg, "id", id ? json_node_copy (id) : json_node_new (JSON_NODE_NULL));
  json_object_set_object_member (msg, "error", err);
  json_node_take_object (root, msg);
  write_node (root);
  json_node_unref (root);
}

/* Takes ownership of params. */
static void
notify (const gchar *method, JsonObject *params)
{
  JsonObject *msg = json_object_new ();
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (msg, "jsonrpc", "2.0");
  json_object_set_string_member (msg, "method", method);
  json_object_set_object_member (msg, "params", params);
  json_node_take_object (root, msg);
  write_node (root);
  json_node_unref (root);
}

/* ------------------------------------------------------------------------------------------- candidates */

/* The RFC 8839 attribute value ("candidate:..."), without "a=". */
static gchar *
candidate_value (NiceAgent *agent, NiceCandidate *cand)
{
  gchar *sdp = nice_agent_generate_local_candidate_sdp (agent, cand);
  gchar *out;

  if (sdp == NULL)
    return NULL;
  out = g_strdup (g_str_has_prefix (sdp, "a=") ? sdp + 2 : sdp);
  g_free (sdp);
  g_strchomp (out);
  return out;
}

/* Parse "candidate:..." (or "a=candidate:..."); NULL when libnice rejects it. */
static NiceCandidate *
parse_candidate (ShimAgent *sa, const gchar *value)
{
  gchar *line = g_str_has_prefix (value, "a=") ? g_strdup (value) : g_strconcat ("a=", value, NULL);
  NiceCandidate *cand;

  g_strstrip (line);
  cand = nice_agent_parse_remote_candidate_sdp (sa->agent, sa->stream_id, line);
  g_free (line);
  if (cand != NULL && (cand->component_id < 1 || cand->component_id > sa->n_components)) {
    nice_candidate_free (cand);
    return NULL;
  }
  return cand;
}

static JsonArray *
local_candidates (ShimAgent *sa)
{
  JsonArray *arr = json_array_new ();
  guint c;

  for (c = 1; c <= sa->n_components; c++) {
    GSList *cands = nice_agent_get_local_candidates (sa->agent, sa->stream_id, c);
    GSList *l;

    for (l = cands; l != NULL; l = l->next) {
      gchar *v = candidate_value (sa->agent, l->data);

      if (v != NULL)
        json_array_add_string_element (arr, v);
      g_free (v);
    }
    g_slist_free_full (cands, (GDestroyNotify) nice_candidate_free);
  }
  return arr;
}

/* Hand candidates to libnice, one call per component. Consumes the list. */
static gint
push_remote_candidates (ShimAgent *sa, GSList *cands)
{
  gint added = 0;
  guint c;

  for (c = 1; c <= sa->n_components; c++) {
    GSList *mine = NULL, *l;

    for (l = cands; l != NULL; l = l->next) {
      NiceCandidate *cand = l->data;

      if (cand->component_id == c)
        mine = g_slist_append (mine, cand);
    }
    if (mine != NULL) {
      gint n = nice_agent_set_remote_candidates (sa->agent, sa->stream_id, c, mine);

      if (n < 0)
        g_warning ("agent %s: nice_agent_set_remote_candidates(component %u) failed", sa->id, c);
      else
        added += n;
      g_slist_free (mine);
    }
  }
  g_slist_free_full (cands, (GDestroyNotify) nice_candidate_free);
  return added;
}

/* -------------------------------------------------------------------------------------------- states */

static const gchar *
native_state_name (guint state)
{
  switch (state) {
    case NICE_COMPONENT_STATE_DISCONNECTED: return "disconnected";
    case NICE_COMPONENT_STATE_GATHERING: return "gathering";
    case NICE_COMPONENT_STATE_CONNECTING: return "connecting";
    case NICE_COMPONENT_STATE_CONNECTED: return "connected";
    case NICE_COMPONENT_STATE_READY: return "ready";
    case NICE_COMPONENT_STATE_FAILED: return "failed";
    default: return "unknown";
  }
}

/* Contract state of one libnice component state; rank orders how far along it is. */
static const gchar *
contract_state (guint state, gint *rank)
{
  switch (state) {
    case NICE_COMPONENT_STATE_CONNECTING: *rank = 1; return "checking";
    case NICE_COMPONENT_STATE_CONNECTED: *rank = 2; return "connected";
    case NICE_COMPONENT_STATE_READY: *rank = 3; return "completed";
    case NICE_COMPONENT_STATE_FAILED: *rank = -1; return "failed";
    default: *rank = 0; return "new";
  }
}

static const gchar *
aggregate_state (ShimAgent *sa)
{
  const gchar *least = NULL;
  gint least_rank = G_MAXINT;
  guint i;

  for (i = 0; i < sa->n_components; i++) {
    gint rank;
    const gchar *s = contract_state (sa->comp_state[i], &rank);

    if (rank < 0)
      return "failed";
    if (rank < least_rank) {
      least_rank = rank;
      least = s;
    }
  }
  return least ? least : "new";
}

static void
notify_state (ShimAgent *sa, const gchar *state, guint component, const gchar *native)
{
  JsonObject *p;

  if (g_strcmp0 (sa->last_state, state) == 0)
    return;
  g_free (sa->last_state);
  sa->last_state = g_strdup (state);
  p = json_object_new ();
  json_object_set_string_member (p, "agent", sa->id);
  json_object_set_string_member (p, "state", state);
  if (component > 0)
    json_object_set_int_member (p, "component", component);
  if (native != NULL)
    json_object_set_string_member (p, "native", native);
  notify ("state", p);
}

/* ------------------------------------------------------------------------------------------- signals */

static void
on_state_changed (NiceAgent *agent, guint stream_id, guint component_id, guint state, gpointer data)
{
  ShimAgent *sa = data;

  (void) agent;
  if (stream_id != sa->stream_id || component_id < 1 || component_id > sa->n_components || sa->closing)
    return;
  g_message ("agent %s: component %u -> %s", sa->id, component_id, native_state_name (state));
  sa->comp_state[component_id - 1] = state;
  notify_state (sa, aggregate_state (sa), component_id, native_state_name (state));
}

static void
on_new_candidate (NiceAgent *agent, NiceCandidate *cand, gpointer data)
{
  ShimAgent *sa = data;
  JsonObject *p;
  gchar *v;

  if (!sa->trickle || cand->stream_id != sa->stream_id)
    return;
  v = candidate_value (agent, cand);
  if (v == NULL)
    return;
  p = json_object_new ();
  json_object_set_string_member (p, "agent", sa->id);
  json_object_set_string_member (p, "candidate", v);
  json_object_set_int_member (p, "component", cand->component_id);
  notify ("candidate", p);
  g_free (v);
}

static void
on_gathering_done (NiceAgent *agent, guint stream_id, gpointer data)
{
  ShimAgent *sa = data;

  (void) agent;
  if (stream_id != sa->stream_id || sa->gathering_done)
    return;
  sa->gathering_done = TRUE;
  g_message ("agent %s: candidate gathering done", sa->id);
  if (sa->trickle) {
    JsonObject *p = json_object_new ();

    json_object_set_string_member (p, "agent", sa->id);
    json_object_set_null_member (p, "candidate");
    notify ("candidate", p);
  }
  if (sa->pending_gather != NULL) {
    JsonObject *r = json_object_new ();
    gchar *ufrag = NULL, *pwd = NULL;

    nice_agent_get_local_credentials (sa->agent, sa->stream_id, &ufrag, &pwd);
    json_object_set_string_member (r, "ufrag", ufrag);
    json_object_set_string_member (r, "pwd", pwd);
    json_object_set_array_member (r, "candidates", local_candidates (sa));
    reply_result (sa->pending_gather, r);
    json_node_unref (sa->pending_gather);
    sa->pending_gather = NULL;
    g_free (ufrag);
    g_free (pwd);
  }
}

static void
on_selected_pair (NiceAgent *agent, guint stream_id, guint component_id, NiceCandidate *local,
    NiceCandidate *remote, gpointer data)
{
  ShimAgent *sa = data;
  JsonObject *p;
  gchar *l, *r;

  if (stream_id != sa->stream_id)
    return;
  l = candidate_value (agent, local);
  r = candidate_value (agent, remote);
  p = json_object_new ();
  json_object_set_string_member (p, "agent", sa->id);
  json_object_set_int_member (p, "component", component_id);
  json_object_set_string_member (p, "local", l ? l : "");
  json_object_set_string_member (p, "remote", r ? r : "");
  notify ("selected_pair", p);
  g_free (l);
  g_free (r);
}

static void
on_recv (NiceAgent *agent, guint stream_id, guint component_id, guint len, gchar *buf, gpointer data)
{
  ShimAgent *sa = data;
  JsonObject *p = json_object_new ();
  gchar *b64 = g_base64_encode ((const guchar *) buf, len);

  (void) agent;
  (void) stream_id;
  json_object_set_string_member (p, "agent", sa->id);
  json_object_set_int_member (p, "component", component_id);
  json_object_set_string_member (p, "data", b64);
  notify ("data", p);
  g_free (b64);
}

/* ------------------------------------------------------------------------------------------- agents */

static void
shim_agent_free (ShimAgent *sa)
{
  if (sa->agent != NULL) {
    g_signal_handlers_disconnect_by_data (sa->agent, sa);
    g_object_unref (sa->agent);
  }
  if (sa->pending_gather != NULL)
    json_node_unref (sa->pending_gather);
  if (sa->pending_close != NULL)
    json_node_unref (sa->pending_close);
  g_slist_free_full (sa->pending_remote, (GDestroyNotify) nice_candidate_free);
  g_free (sa->comp_state);
  g_free (sa->last_state);
  g_free (sa->id);
  g_free (sa);
}

/* Split "host:port" or "[v6]:port"; FALSE if malformed. */
static gboolean
split_host_port (const gchar *text, gchar **host, guint *port)
{
  const gchar *colon;
  gchar *end = NULL;
  guint64 p;

  if (text[0] == '[') {
    const gchar *close = strchr (text, ']');

    if (close == NULL || close[1] != ':')
      return FALSE;
    *host = g_strndup (text + 1, close - text - 1);
    colon = close + 1;
  } else {
    colon = strrchr (text, ':');
    if (colon == NULL)
      return FALSE;
    *host = g_strndup (text, colon - text);
  }
  p = g_ascii_strtoull (colon + 1, &end, 10);
  if (end == colon + 1 || (*end != '\0' && *end != '?') || p == 0 || p > 65535) {
    g_free (*host);
    *host = NULL;
    return FALSE;
  }
  *port = (guint) p;
  return TRUE;
}

static const gchar *
str_member (JsonObject *o, const gchar *name)
{
  JsonNode *n = json_object_get_member (o, name);

  if (n == NULL || JSON_NODE_HOLDS_NULL (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

static gboolean
bool_member (JsonObject *o, const gchar *name, gboolean dflt)
{
  JsonNode *n = json_object_get_member (o, name);

  if (n == NULL || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return dflt;
  return json_node_get_boolean (n);
}

/* An integer member, dflt when absent; FALSE when present but not an integer. */
static gboolean
int_member (JsonObject *o, const gchar *name, gint64 dflt, gint64 *out)
{
  JsonNode *n = json_object_get_member (o, name);

  *out = dflt;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

/* RFC 8839 section 5.4: ice-ufrag = 4*256ice-char, ice-pwd = 22*256ice-char, ice-char = ALPHA / DIGIT / "+" / "/". */
static gboolean
valid_ice_chars (const gchar *s, gsize min)
{
  gsize n = strlen (s), i;

  if (n < min || n > 256)
    return FALSE;
  for (i = 0; i < n; i++)
    if (!g_ascii_isalnum (s[i]) && s[i] != '+' && s[i] != '/')
      return FALSE;
  return TRUE;
}

static gboolean
check_credentials (JsonNode *id, const gchar *ufrag, const gchar *pwd)
{
  if ((ufrag == NULL) != (pwd == NULL)) {
    reply_error (id, ERR_INVALID_PARAMS, "give both ufrag and pwd, or neither");
    return FALSE;
  }
  if (ufrag != NULL && (!valid_ice_chars (ufrag, 4) || !valid_ice_chars (pwd, 22))) {
    reply_error (id, ERR_INVALID_PARAMS,
        "credentials outside the RFC 8839 grammar (ufrag 4-256, pwd 22-256 of ALPHA / DIGIT / + /)");
    return FALSE;
  }
  return TRUE;
}

static ShimAgent *
find_agent (JsonNode *id, JsonObject *params)
{
  const gchar *name = str_member (params, "agent");
  ShimAgent *sa = name ? g_hash_table_lookup (agents, name) : NULL;

  if (sa == NULL || sa->closing) {
    reply_error (id, ERR_UNKNOWN_AGENT, "unknown agent %s", name ? name : "(missing)");
    return NULL;
  }
  return sa;
}

/* ------------------------------------------------------------------------------------------- methods */

static void
m_initialize (JsonNode *id, JsonObject *params)
{
  JsonObject *r = json_object_new ();
  JsonNode *caps = json_from_string (SHIM_CAPABILITIES_JSON, NULL);

  (void) params;
  json_object_set_string_member (r, "name", "libnice");
  json_object_set_string_member (r, "version", SHIM_LIBNICE_VERSION);
  json_object_set_string_member (r, "contract", CONTRACT_VERSION);
  if (caps == NULL || !JSON_NODE_HOLDS_ARRAY (caps)) {
    if (caps)
      json_node_unref (caps);
    caps = json_node_new (JSON_NODE_ARRAY);
    json_node_take_array (caps, json_array_new ());
  }
  json_object_set_member (r, "capabilities", caps);
  reply_result (id, r);
}

static gboolean
add_relays (JsonNode *id, ShimAgent *sa, JsonArray *turns)
{
  guint i, c;

  for (i = 0; turns != NULL && i < json_array_get_length (turns); i++) {
    JsonNode *n = json_array_get_element (turns, i);
    JsonObject *t = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
    const gchar *uri = t ? str_member (t, "uri") : NULL;
    const gchar *user = t ? str_member (t, "username") : NULL;
    const gchar *pass = t ? str_member (t, "password") : NULL;
    NiceRelayType type = NICE_RELAY_TYPE_TURN_UDP;
    const gchar *rest;
    gchar *host = NULL;
    guint port = 0;

    if (uri == NULL || user == NULL || pass == NULL) {
      reply_error (id, ERR_INVALID_PARAMS, "turn_servers[%u] needs uri, username and password", i);
      return FALSE;
    }
    if (g_str_has_prefix (uri, "turns:")) {
      type = NICE_RELAY_TYPE_TURN_TLS;
      rest = uri + 6;
    } else if (g_str_has_prefix (uri, "turn:")) {
      rest = uri + 5;
    } else {
      reply_error (id, ERR_INVALID_PARAMS, "turn_servers[%u]: not a turn: URI: %s", i, uri);
      return FALSE;
    }
    if (strstr (rest, "transport=tcp") != NULL && type == NICE_RELAY_TYPE_TURN_UDP)
      type = NICE_RELAY_TYPE_TURN_TCP;
    if (!split_host_port (rest, &host, &port)) {
      reply_error (id, ERR_INVALID_PARAMS, "turn_servers[%u]: need turn:HOST:PORT, got %s", i, uri);
      return FALSE;
    }
    for (c = 1; c <= sa->n_components; c++) {
      if (!nice_agent_set_relay_info (sa->agent, sa->stream_id, c, host, port, user, pass, type)) {
        reply_error (id, ERR_INTERNAL, "nice_agent_set_relay_info(%s, %u) failed (an IP address is needed)",
            host, port);
        g_free (host);
        return FALSE;
      }
    }
    g_free (host);
  }
  return TRUE;
}

static void
m_create_agent (JsonNode *id, JsonObject *params)
{
  const gchar *role = str_member (params, "role");
  const gchar *ufrag = str_member (params, "ufrag");
  const gchar *pwd = str_member (params, "pwd");
  JsonNode *ifn = json_object_get_member (params, "interfaces");
  JsonNode *stn = json_object_get_member (params, "stun_servers");
  JsonNode *tun = json_object_get_member (params, "turn_servers");
  JsonNode *optn = json_object_get_member (params, "options");
  JsonObject *opts = optn && JSON_NODE_HOLDS_OBJECT (optn) ? json_node_get_object (optn) : NULL;
  gint64 components = 1;
  gboolean trickle = bool_member (params, "trickle", FALSE);
  gboolean relay_only = bool_member (params, "relay_only", FALSE);
  const gchar *nomination = opts ? str_member (opts, "nomination") : NULL;
  NiceAgentOption flags = NICE_AGENT_OPTION_NONE;
  ShimAgent *sa;
  JsonObject *r;
  guint i, c;

  if (role == NULL || (strcmp (role, "controlling") != 0 && strcmp (role, "controlled") != 0)) {
    reply_error (id, ERR_INVALID_PARAMS, "role must be \"controlling\" or \"controlled\"");
    return;
  }
  if (!int_member (params, "components", 1, &components) || components < 1 || components > 256) {
    reply_error (id, ERR_INVALID_PARAMS, "components must be 1..256");
    return;
  }
  if (!check_credentials (id, ufrag, pwd))
    return;
  /* An empty list would let libnice gather on every interface of the machine: never off loopback unasked. */
  if (ifn != NULL && !JSON_NODE_HOLDS_NULL (ifn)
      && (!JSON_NODE_HOLDS_ARRAY (ifn) || json_array_get_length (json_node_get_array (ifn)) == 0)) {
    reply_error (id, ERR_INVALID_PARAMS, "interfaces must be a non-empty array of IP addresses");
    return;
  }

  /* RFC 8445 dropped aggressive nomination: regular unless asked. */
  if (nomination == NULL || strcmp (nomination, "regular") == 0)
    flags |= NICE_AGENT_OPTION_REGULAR_NOMINATION;
  else if (strcmp (nomination, "aggressive") != 0) {
    reply_error (id, ERR_INVALID_PARAMS, "options.nomination must be \"regular\" or \"aggressive\"");
    return;
  }
  if (trickle)
    flags |= NICE_AGENT_OPTION_ICE_TRICKLE;
  if (opts == NULL || bool_member (opts, "consent_freshness", TRUE))
    flags |= NICE_AGENT_OPTION_CONSENT_FRESHNESS;
  if (opts != NULL && bool_member (opts, "lite", FALSE))
    flags |= NICE_AGENT_OPTION_LITE_MODE;
  if (opts != NULL) {
    GList *names = json_object_get_members (opts), *l;

    for (l = names; l != NULL; l = l->next)
      if (g_strcmp0 (l->data, "nomination") != 0 && g_strcmp0 (l->data, "consent_freshness") != 0
          && g_strcmp0 (l->data, "lite") != 0)
        g_message ("create_agent: ignoring unknown option %s", (const gchar *) l->data);
    g_list_free (names);
  }

  sa = g_new0 (ShimAgent, 1);
  sa->id = g_strdup_printf ("%u", next_agent++);
  sa->trickle = trickle;
  sa->n_components = (guint) components;
  sa->comp_state = g_new0 (guint, sa->n_components);
  sa->agent = nice_agent_new_full (g_main_loop_get_context (loop), NICE_COMPATIBILITY_RFC5245, flags);
  g_object_set (sa->agent, "controlling-mode", strcmp (role, "controlling") == 0, "upnp", FALSE,
      "ice-tcp", FALSE, "ice-udp", TRUE, "force-relay", relay_only, NULL);

  if (ifn == NULL || JSON_NODE_HOLDS_NULL (ifn)) {
    NiceAddress addr;

    nice_address_init (&addr);
    nice_address_set_from_string (&addr, "127.0.0.1");
    nice_agent_add_local_address (sa->agent, &addr);
  } else {
    JsonArray *ifs = json_node_get_array (ifn);

    for (i = 0; i < json_array_get_length (ifs); i++) {
      JsonNode *e = json_array_get_element (ifs, i);
      const gchar *ip = json_node_get_value_type (e) == G_TYPE_STRING ? json_node_get_string (e) : NULL;
      NiceAddress addr;

      nice_address_init (&addr);
      if (ip == NULL || !nice_address_set_from_string (&addr, ip)) {
        reply_error (id, ERR_INVALID_PARAMS, "interfaces[%u] is not an IP address", i);
        shim_agent_free (sa);
        return;
      }
      nice_agent_add_local_address (sa->agent, &addr);
    }
  }

  if (stn != NULL && JSON_NODE_HOLDS_ARRAY (stn) && json_array_get_length (json_node_get_array (stn)) > 0) {
    JsonArray *st = json_node_get_array (stn);
    JsonNode *e = json_array_get_element (st, 0);
    const gchar *hp = json_node_get_value_type (e) == G_TYPE_STRING ? json_node_get_string (e) : NULL;
    gchar *host = NULL;
    guint port = 0;

    if (hp != NULL && g_str_has_prefix (hp, "stun:"))
      hp += 5;
    if (hp == NULL || !split_host_port (hp, &host, &port)) {
      reply_error (id, ERR_INVALID_PARAMS, "stun_servers[0] must be \"host:port\"");
      shim_agent_free (sa);
      return;
    }
    if (json_array_get_length (st) > 1)
      g_warning ("libnice takes one STUN server; using %s and ignoring the rest", hp);
    g_object_set (sa->agent, "stun-server", host, "stun-server-port", port, NULL);
    g_free (host);
  }

  sa->stream_id = nice_agent_add_stream (sa->agent, sa->n_components);
  if (sa->stream_id == 0) {
    reply_error (id, ERR_INTERNAL, "nice_agent_add_stream failed");
    shim_agent_free (sa);
    return;
  }
  if (ufrag != NULL && !nice_agent_set_local_credentials (sa->agent, sa->stream_id, ufrag, pwd)) {
    reply_error (id, ERR_INTERNAL, "nice_agent_set_local_credentials rejected the credentials");
    shim_agent_free (sa);
    return;
  }
  if (tun != NULL && JSON_NODE_HOLDS_ARRAY (tun) && !add_relays (id, sa, json_node_get_array (tun))) {
    shim_agent_free (sa);
    return;
  }
  for (c = 1; c <= sa->n_components; c++) {
    if (!nice_agent_attach_recv (sa->agent, sa->stream_id, c, g_main_loop_get_context (loop), on_recv, sa)) {
      reply_error (id, ERR_INTERNAL, "nice_agent_attach_recv(component %u) failed", c);
      shim_agent_free (sa);
      return;
    }
  }
  g_signal_connect (sa->agent, "component-state-changed", G_CALLBACK (on_state_changed), sa);
  g_signal_connect (sa->agent, "new-candidate-full", G_CALLBACK (on_new_candidate), sa);
  g_signal_connect (sa->agent, "candidate-gathering-done", G_CALLBACK (on_gathering_done), sa);
  g_signal_connect (sa->agent, "new-selected-pair-full", G_CALLBACK (on_selected_pair), sa);

  g_hash_table_insert (agents, g_strdup (sa->id), sa);
  g_message ("agent %s: %s, %u component(s), trickle=%d, relay_only=%d, nomination=%s", sa->id, role,
      sa->n_components, trickle, relay_only, nomination ? nomination : "regular");
  r = json_object_new ();
  json_object_set_string_member (r, "agent", sa->id);
  reply_result (id, r);
  notify_state (sa, "new", 0, NULL);
}

static void
m_gather (JsonNode *id, JsonObject *params)
{
  ShimAgent *sa = find_agent (id, params);
  gboolean waiting;

  if (sa == NULL)
    return;
  if (sa->pending_gather != NULL) {
    reply_error (id, ERR_INVALID_STATE, "agent %s: a gather is already in progress", sa->id);
    return;
  }
  /* Without trickle the answer waits for candidate-gathering-done (on_gathering_done), which libnice may
   * emit from inside nice_agent_gather_candidates. */
  sa->gather_called = TRUE;
  waiting = !sa->gathering_done && !sa->trickle;
  if (waiting)
    sa->pending_gather = json_node_copy (id);
  if (!nice_agent_gather_candidates (sa->agent, sa->stream_id)) {
    if (sa->pending_gather != NULL) {
      json_node_unref (sa->pending_gather);
      sa->pending_gather = NULL;
    }
    reply_error (id, ERR_INTERNAL, "nice_agent_gather_candidates failed");
    return;
  }
  if (!waiting) {
    JsonObject *r = json_object_new ();
    gchar *ufrag = NULL, *pwd = NULL;

    nice_agent_get_local_credentials (sa->agent, sa->stream_id, &ufrag, &pwd);
    json_object_set_string_member (r, "ufrag", ufrag);
    json_object_set_string_member (r, "pwd", pwd);
    json_object_set_array_member (r, "candidates", sa->trickle ? json_array_new () : local_candidates (sa));
    reply_result (id, r);
    g_free (ufrag);
    g_free (pwd);
  }
}

/* Why a candidate the IUT cannot use is skipped (contract: ignore with a stderr line), or NULL. */
static const gchar *
unusable_reason (const gchar *value)
{
  gchar **f = g_strsplit_set (value, " \t", 0);
  const gchar *why = NULL;

  if (g_strv_length (f) >= 6) {
    if (g_ascii_strcasecmp (f[2], "udp") != 0)
      why = "not UDP (ICE-TCP is off)";
    else if (g_str_has_suffix (f[4], ".local"))
      why = "an mDNS name";
  }
  g_strfreev (f);
  return why;
}

/* Parse candidate values; on a value libnice cannot parse, answer -32602 and return FALSE (nothing is
 * applied). Otherwise the candidates are buffered, or after connect handed to libnice. */
static gboolean
take_remote_candidates (JsonNode *id, ShimAgent *sa, JsonArray *values)
{
  GSList *parsed = NULL;
  guint i;

  for (i = 0; values != NULL && i < json_array_get_length (values); i++) {
    JsonNode *e = json_array_get_element (values, i);
    const gchar *v = json_node_get_value_type (e) == G_TYPE_STRING ? json_node_get_string (e) : NULL;
    const gchar *why;
    NiceCandidate *cand;

    if (v == NULL) {
      g_slist_free_full (parsed, (GDestroyNotify) nice_candidate_free);
      reply_error (id, ERR_INVALID_PARAMS, "candidates must be strings");
      return FALSE;
    }
    why = unusable_reason (g_str_has_prefix (v, "a=") ? v + 2 : v);
    if (why != NULL) {
      g_message ("agent %s: ignoring remote candidate (%s): %s", sa->id, why, v);
      continue;
    }
    cand = parse_candidate (sa, v);
    if (cand == NULL) {
      g_slist_free_full (parsed, (GDestroyNotify) nice_candidate_free);
      reply_error (id, ERR_INVALID_PARAMS, "libnice cannot parse the candidate %s", v);
      return FALSE;
    }
    parsed = g_slist_append (parsed, cand);
  }
  if (sa->connected)
    push_remote_candidates (sa, parsed);
  else
    sa->pending_remote = g_slist_concat (sa->pending_remote, parsed);
  return TRUE;
}

static void
m_set_remote (JsonNode *id, JsonObject *params)
{
  ShimAgent *sa = find_agent (id, params);
  const gchar *ufrag = str_member (params, "ufrag");
  const gchar *pwd = str_member (params, "pwd");
  JsonNode *cn = json_object_get_member (params, "candidates");

  if (sa == NULL)
    return;
  if (ufrag == NULL || pwd == NULL) {
    reply_error (id, ERR_INVALID_PARAMS, "set_remote needs ufrag and pwd");
    return;
  }
  if (cn != NULL && !JSON_NODE_HOLDS_ARRAY (cn) && !JSON_NODE_HOLDS_NULL (cn)) {
    reply_error (id, ERR_INVALID_PARAMS, "candidates must be an array of strings");
    return;
  }
  if (bool_member (params, "lite", FALSE))
    g_warning ("agent %s: libnice has no setting for a lite peer; ignoring lite=true", sa->id);
  if (!take_remote_candidates (id, sa, cn && JSON_NODE_HOLDS_ARRAY (cn) ? json_node_get_array (cn) : NULL))
    return;
  if (!nice_agent_set_remote_credentials (sa->agent, sa->stream_id, ufrag, pwd)) {
    reply_error (id, ERR_INTERNAL, "nice_agent_set_remote_credentials failed");
    return;
  }
  sa->remote_set = TRUE;
  /* Without trickle the list is complete. */
  if (!sa->trickle)
    sa->remote_eoc = TRUE;
  reply_result (id, NULL);
}

static void
m_add_remote_candidate (JsonNode *id, JsonObject *params)
{
  ShimAgent *sa = find_agent (id, params);
  JsonNode *cn;
  JsonArray *one;

  if (sa == NULL)
    return;
  if (sa->remote_eoc) {
    reply_error (id, ERR_INVALID_STATE, "agent %s: remote candidates have already ended", sa->id);
    return;
  }
  cn = json_object_get_member (params, "candidate");
  if (cn == NULL || JSON_NODE_HOLDS_NULL (cn)) {
    sa->remote_eoc = TRUE;
    if (sa->connected)
      nice_agent_peer_candidate_gathering_done (sa->agent, sa->stream_id);
    reply_result (id, NULL);
    return;
  }
  if (json_node_get_value_type (cn) != G_TYPE_STRING) {
    reply_error (id, ERR_INVALID_PARAMS, "candidate must be a string or null");
    return;
  }
  one = json_array_new ();
  json_array_add_string_element (one, json_node_get_string (cn));
  if (take_remote_candidates (id, sa, one))
    reply_result (id, NULL);
  json_array_unref (one);
}

static void
m_connect (JsonNode *id, JsonObject *params)
{
  ShimAgent *sa = find_agent (id, params);
  GSList *pending;
  gint added;

  if (sa == NULL)
    return;
  if (!sa->gather_called || !sa->remote_set) {
    reply_error (id, ERR_INVALID_STATE, "agent %s: connect needs gather and set_remote first", sa->id);
    return;
  }
  pending = sa->pending_remote;
  sa->pending_remote = NULL;
  sa->connected = TRUE;
  added = push_remote_candidates (sa, pending);
  g_message ("agent %s: connect: %d remote candidate(s) handed to libnice", sa->id, added);
  if (sa->remote_eoc)
    nice_agent_peer_candidate_gathering_done (sa->agent, sa->stream_id);
  reply_result (id, NULL);
}

static void
m_send (JsonNode *id, JsonObject *params)
{
  ShimAgent *sa = find_agent (id, params);
  const gchar *data;
  gint64 component;
  guchar *bytes;
  gsize len = 0;
  gint sent;

  if (sa == NULL)
    return;
  data = str_member (params, "data");
  if (data == NULL || !int_member (params, "component", 1, &component) || component < 1 || component > (gint64) sa->n_components) {
    reply_error (id, ERR_INVALID_PARAMS, "send needs data (base64) and a valid component");
    return;
  }
  bytes = g_base64_decode (data, &len);
  sent = nice_agent_send (sa->agent, sa->stream_id, (guint) component, (guint) len, (const gchar *) bytes);
  g_free (bytes);
  if (sent < 0 || (gsize) sent != len) {
    reply_error (id, ERR_INVALID_STATE, "nice_agent_send failed (no selected pair yet?)");
    return;
  }
  reply_result (id, NULL);
}

static void
m_restart (JsonNode *id, JsonObject *params)
{
  ShimAgent *sa = find_agent (id, params);
  const gchar *ufrag, *pwd;
  gchar *lu = NULL, *lp = NULL;
  JsonObject *r;

  if (sa == NULL)
    return;
  ufrag = str_member (params, "ufrag");
  pwd = str_member (params, "pwd");
  if (!check_credentials (id, ufrag, pwd))
    return;
  if (!nice_agent_restart_stream (sa->agent, sa->stream_id)) {
    reply_error (id, ERR_INTERNAL, "nice_agent_restart_stream failed");
    return;
  }
  if (ufrag != NULL && !nice_agent_set_local_credentials (sa->agent, sa->stream_id, ufrag, pwd)) {
    reply_error (id, ERR_INTERNAL, "nice_agent_set_local_credentials rejected the credentials");
    return;
  }
  /* A new generation: candidates buffer again until the next connect. */
  sa->connected = FALSE;
  sa->remote_eoc = FALSE;
  sa->remote_set = FALSE;
  g_slist_free_full (sa->pending_remote, (GDestroyNotify) nice_candidate_free);
  sa->pending_remote = NULL;
  nice_agent_get_local_credentials (sa->agent, sa->stream_id, &lu, &lp);
  g_message ("agent %s: restarted, new ufrag %s", sa->id, lu);
  r = json_object_new ();
  json_object_set_string_member (r, "ufrag", lu);
  json_object_set_string_member (r, "pwd", lp);
  reply_result (id, r);
  g_free (lu);
  g_free (lp);
}

static void
on_closed (GObject *src, GAsyncResult *res, gpointer data)
{
  gchar *name = data;
  ShimAgent *sa = g_hash_table_lookup (agents, name);
  JsonObject *p;

  (void) src;
  (void) res;
  if (sa != NULL && sa->pending_close != NULL) {
    p = json_object_new ();
    json_object_set_string_member (p, "agent", sa->id);
    json_object_set_string_member (p, "state", "closed");
    notify ("state", p);
    reply_result (sa->pending_close, NULL);
    g_hash_table_remove (agents, name); /* frees the agent */
  }
  g_free (name);
}

static void
m_close (JsonNode *id, JsonObject *params)
{
  ShimAgent *sa = find_agent (id, params);

  if (sa == NULL)
    return;
  sa->closing = TRUE;
  if (sa->pending_gather != NULL) {
    reply_error (sa->pending_gather, ERR_INVALID_STATE, "agent %s closed before gathering finished", sa->id);
    json_node_unref (sa->pending_gather);
    sa->pending_gather = NULL;
  }
  g_signal_handlers_disconnect_by_data (sa->agent, sa);
  sa->pending_close = json_node_copy (id);
  /* Releases TURN allocations; the reply waits for it. */
  nice_agent_close_async (sa->agent, on_closed, g_strdup (sa->id));
}

static void
m_shutdown (JsonNode *id, JsonObject *params)
{
  GHashTableIter it;
  gpointer key, value;

  (void) params;
  /* Closes still releasing TURN allocations are answered now: the loop stops here. */
  g_hash_table_iter_init (&it, agents);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    ShimAgent *sa = value;
    JsonObject *p = json_object_new ();

    (void) key;
    json_object_set_string_member (p, "agent", sa->id);
    json_object_set_string_member (p, "state", "closed");
    notify ("state", p);
    if (sa->pending_close != NULL) {
      reply_result (sa->pending_close, NULL);
      json_node_unref (sa->pending_close);
      sa->pending_close = NULL;
    }
  }
  reply_result (id, NULL);
  quitting = TRUE;
  g_main_loop_quit (loop);
}

typedef void (*Method) (JsonNode *id, JsonObject *params);

static const struct {
  const gchar *name;
  Method fn;
} methods[] = {
  {"initialize", m_initialize},
  {"create_agent", m_create_agent},
  {"gather", m_gather},
  {"set_remote", m_set_remote},
  {"add_remote_candidate", m_add_remote_candidate},
  {"connect", m_connect},
  {"send", m_send},
  {"restart", m_restart},
  {"close", m_close},
  {"shutdown", m_shutdown},
};

/* -------------------------------------------------------------------------------------------- input */

static void
handle_line (const gchar *line, gsize len)
{
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  JsonNode *root, *idn, *paramsn;
  JsonObject *req, *params;
  const gchar *method;
  gboolean is_notification;
  guint i;

  g_debug ("> %.*s", (int) len, line);
  if (!json_parser_load_from_data (parser, line, (gssize) len, &err)) {
    reply_error (NULL, ERR_PARSE, "parse error: %s", err->message);
    g_error_free (err);
    g_object_unref (parser);
    return;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    reply_error (NULL, ERR_INVALID_REQUEST, "a request must be a JSON object");
    g_object_unref (parser);
    return;
  }
  req = json_node_get_object (root);
  idn = json_object_get_member (req, "id");
  if (idn != NULL && !JSON_NODE_HOLDS_NULL (idn) && json_node_get_value_type (idn) != G_TYPE_INT64
      && json_node_get_value_type (idn) != G_TYPE_STRING) {
    reply_error (NULL, ERR_INVALID_REQUEST, "id must be a number, a string or null");
    g_object_unref (parser);
    return;
  }
  is_notification = idn == NULL;
  method = str_member (req, "method");
  if (g_strcmp0 (str_member (req, "jsonrpc"), "2.0") != 0 || method == NULL) {
    reply_error (idn, ERR_INVALID_REQUEST, "need \"jsonrpc\": \"2.0\" and a method");
    g_object_unref (parser);
    return;
  }
  paramsn = json_object_get_member (req, "params");
  if (paramsn != NULL && !JSON_NODE_HOLDS_OBJECT (paramsn)) {
    reply_error (idn, ERR_INVALID_PARAMS, "params must be an object");
    g_object_unref (parser);
    return;
  }
  if (is_notification) {
    g_message ("ignoring notification %s: requests need an id", method);
    g_object_unref (parser);
    return;
  }
  params = paramsn ? json_object_ref (json_node_get_object (paramsn)) : json_object_new ();
  for (i = 0; i < G_N_ELEMENTS (methods); i++) {
    if (strcmp (methods[i].name, method) == 0) {
      g_message ("request %s", method);
      methods[i].fn (idn, params);
      break;
    }
  }
  if (i == G_N_ELEMENTS (methods))
    reply_error (idn, ERR_METHOD_NOT_FOUND, "method not found: %s", method);
  json_object_unref (params);
  g_object_unref (parser);
}

static gboolean
on_stdin (GIOChannel *ch, GIOCondition cond, gpointer data)
{
  (void) data;
  (void) cond;
  for (;;) {
    gchar *line = NULL;
    gsize len = 0, term = 0;
    GError *err = NULL;
    GIOStatus st = g_io_channel_read_line (ch, &line, &len, &term, &err);

    if (st == G_IO_STATUS_NORMAL) {
      gsize n = term;

      while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
      if (n > 0)
        handle_line (line, n);
      g_free (line);
      if (quitting)
        return G_SOURCE_REMOVE;
      continue;
    }
    g_free (line);
    if (st == G_IO_STATUS_AGAIN)
      return G_SOURCE_CONTINUE;
    if (st == G_IO_STATUS_ERROR) {
      g_warning ("stdin: %s", err ? err->message : "read error");
      g_clear_error (&err);
    } else {
      g_message ("stdin closed; exiting");
    }
    g_main_loop_quit (loop);
    return G_SOURCE_REMOVE;
  }
}

int
main (void)
{
  GIOChannel *in;
  int out_fd;

  /* Keep the protocol stream private: anything else written to stdout (a library's debug print) goes to
   * stderr instead of corrupting the JSON lines. */
  out_fd = dup (STDOUT_FILENO);
  if (out_fd < 0 || dup2 (STDERR_FILENO, STDOUT_FILENO) < 0) {
    fprintf (stderr, "libnice shim: cannot set up stdout: %s\n", strerror (errno));
    return 2;
  }
  proto_out = fdopen (out_fd, "w");
  if (proto_out == NULL) {
    fprintf (stderr, "libnice shim: fdopen: %s\n", strerror (errno));
    return 2;
  }
  g_log_writer_default_set_use_stderr (TRUE);

  loop = g_main_loop_new (NULL, FALSE);
  agents = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) shim_agent_free);

  in = g_io_channel_unix_new (STDIN_FILENO);
  g_io_channel_set_encoding (in, NULL, NULL);
  g_io_channel_set_buffered (in, TRUE);
  g_io_channel_set_flags (in, G_IO_FLAG_NONBLOCK, NULL);
  g_io_add_watch (in, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, NULL);

  g_message ("libnice %s shim ready (contract %s)", SHIM_LIBNICE_VERSION, CONTRACT_VERSION);
  g_main_loop_run (loop);

  g_hash_table_destroy (agents);
  g_io_channel_unref (in);
  g_main_loop_unref (loop);
  fclose (proto_out);
  return 0;
}
