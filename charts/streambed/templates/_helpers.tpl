{{/*
Names, labels and the derived values every template shares. Derivations live
here once (CPU from threads, grace period from the drain timeout, stream names
from the model table) so the Deployment, the autoscalers and the tests cannot
disagree.
*/}}

{{- define "streambed.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, or just the release name when it already contains the chart name. */}}
{{- define "streambed.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "streambed.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streambed.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streambed.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streambed.labels" -}}
helm.sh/chart: {{ include "streambed.chart" . }}
{{ include "streambed.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
metadata.annotations of a top-level resource, starting with its own newline so
`{{- include ... }}` leaves nothing behind when there are none.
*/}}
{{- define "streambed.annotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.root.Values.commonAnnotations | default dict) -}}
{{- with $all -}}
{{- "annotations:" | nindent 2 }}
{{- toYaml . | nindent 4 }}
{{- end -}}
{{- end -}}

{{- define "streambed.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streambed.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "streambed.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repo -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
MODELS: name=ref[;opt=value...] joined with commas, options in a fixed order so
the rendered ConfigMap (and its checksum) only changes when a value does.
*/}}
{{- define "streambed.models" -}}
{{- $entries := list -}}
{{- range .Values.models -}}
{{- $e := printf "%s=%s" .name .ref -}}
{{- if hasKey . "dtype" }}{{ $e = printf "%s;dtype=%s" $e .dtype }}{{ end -}}
{{- if hasKey . "pooling" }}{{ $e = printf "%s;pooling=%s" $e .pooling }}{{ end -}}
{{- if hasKey . "normalize" }}{{ $e = printf "%s;normalize=%t" $e .normalize }}{{ end -}}
{{- if hasKey . "maxTokens" }}{{ $e = printf "%s;maxTokens=%d" $e (int64 .maxTokens) }}{{ end -}}
{{- if hasKey . "chunk" }}{{ $e = printf "%s;chunk=%t" $e .chunk }}{{ end -}}
{{- if hasKey . "chunkWindow" }}{{ $e = printf "%s;chunkWindow=%d" $e (int64 .chunkWindow) }}{{ end -}}
{{- if hasKey . "chunkOverlap" }}{{ $e = printf "%s;chunkOverlap=%d" $e (int64 .chunkOverlap) }}{{ end -}}
{{- if hasKey . "matryoshka" }}{{ $sizes := list }}{{ range .matryoshka }}{{ $sizes = append $sizes (toString (int64 .)) }}{{ end }}{{ $e = printf "%s;matryoshka=%s" $e (join "|" $sizes) }}{{ end -}}
{{- /* Remote options in key order; numbers as integers (YAML gives floats: 1e+06). */}}
{{- range $k, $v := (.remote | default dict) }}{{ $e = printf "%s;%s=%s" $e $k (ternary (toString (int64 $v)) (toString $v) (kindIs "float64" $v)) }}{{ end -}}
{{- $entries = append $entries $e -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}

{{/* Whole cores one pod needs: every worker thread runs intraOpThreads ONNX threads. */}}
{{- define "streambed.cpuCores" -}}
{{- mul (int64 .Values.concurrency.threads) (int64 .Values.concurrency.intraOpThreads) -}}
{{- end -}}

{{/* Each thread keeps its own copy of each model. */}}
{{- define "streambed.memoryMi" -}}
{{- $perModel := mul (int64 .Values.sizing.memoryPerModelPerThreadMi) (len .Values.models) -}}
{{- add (int64 .Values.sizing.baseMemoryMi) (mul (int64 .Values.concurrency.threads) $perModel) -}}
{{- end -}}

{{/* A CPU quantity ("2", 2, "1500m", "0.5") in millicores. */}}
{{- define "streambed.millicores" -}}
{{- $q := toString . -}}
{{- if hasSuffix "m" $q -}}
{{- trimSuffix "m" $q | float64 | int64 -}}
{{- else -}}
{{- mulf (float64 $q) 1000 | int64 -}}
{{- end -}}
{{- end -}}

{{/* Container resources: derived, or the user's after checking the CPU request covers the threads. */}}
{{- define "streambed.resources" -}}
{{- $cores := include "streambed.cpuCores" . | int64 -}}
{{- if .Values.resources -}}
{{- $cpu := dig "requests" "cpu" "" .Values.resources -}}
{{- if not $cpu -}}
{{- fail (printf "resources.requests.cpu is required when resources is set: concurrency.threads x concurrency.intraOpThreads = %d cores are busy under load" $cores) -}}
{{- end -}}
{{- if lt (include "streambed.millicores" $cpu | int64) (mul $cores 1000) -}}
{{- fail (printf "resources.requests.cpu (%v) is below concurrency.threads x concurrency.intraOpThreads = %d: the pod would be throttled; raise the request or lower the threads" $cpu $cores) -}}
{{- end -}}
{{- toYaml .Values.resources -}}
{{- else -}}
{{- $mem := printf "%dMi" (include "streambed.memoryMi" . | int64) -}}
requests:
  cpu: {{ $cores | quote }}
  memory: {{ $mem }}
limits:
  memory: {{ $mem }}
{{- end -}}
{{- end -}}

{{/* DRAIN_TIMEOUT_MS rounded up to seconds, plus the grace for the last ack. */}}
{{- define "streambed.terminationGracePeriodSeconds" -}}
{{- $drainS := div (add (int64 .Values.worker.drainTimeoutMs) 999) 1000 -}}
{{- add $drainS (int64 .Values.drainGraceSeconds) -}}
{{- end -}}

{{- define "streambed.redisSecretName" -}}
{{- default (include "streambed.fullname" .) .Values.redis.existingSecret -}}
{{- end -}}

{{- define "streambed.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}redis-url{{ end -}}
{{- end -}}

{{- define "streambed.pgSecretName" -}}
{{- default (include "streambed.fullname" .) .Values.postgres.existingSecret -}}
{{- end -}}

{{- define "streambed.pgSecretKey" -}}
{{- if .Values.postgres.existingSecret }}{{ .Values.postgres.existingSecretKey }}{{ else }}pg-url{{ end -}}
{{- end -}}

{{- define "streambed.redisCaDir" -}}/etc/streambed/redis-tls{{- end -}}

{{/*
Where Redis is, beyond REDIS_URL: Cluster or Sentinel settings, as ConfigMap
data. Every process that connects (workers, gateway, console) gets the same.
*/}}
{{- define "streambed.redisTopology" -}}
{{- if .Values.redis.cluster.enabled }}
REDIS_CLUSTER: "true"
{{- end }}
{{- with .Values.redis.sentinel.hosts }}
REDIS_SENTINELS: {{ join "," . | quote }}
REDIS_SENTINEL_NAME: {{ $.Values.redis.sentinel.masterName | quote }}
{{- end }}
{{- end -}}

{{/*
The Redis secrets as container env: REDIS_URL and, with sentinels, their
password. (dict "root" . "own" .Values.gateway.redis): a component's own
REDIS_URL Secret (its ACL user, docs/acl.md) when set, else the workers'.
*/}}
{{- define "streambed.redisSecretEnv" -}}
{{- $root := .root -}}
{{- $own := .own | default dict -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      {{- if $own.existingSecret }}
      name: {{ $own.existingSecret }}
      key: {{ $own.existingSecretKey }}
      {{- else }}
      name: {{ include "streambed.redisSecretName" $root }}
      key: {{ include "streambed.redisSecretKey" $root }}
      {{- end }}
{{- with $root.Values.redis.sentinel }}
{{- if and .hosts .existingSecret }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .existingSecretKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The model cache's volume source. */}}
{{- define "streambed.modelCacheVolume" -}}
{{- $p := .Values.modelCache.persistence -}}
{{- if $p.enabled -}}
{{- /* readOnly goes on the worker's mount, not here: the init step must still write. */ -}}
persistentVolumeClaim:
  claimName: {{ default (printf "%s-models" (include "streambed.fullname" .)) $p.existingClaim }}
{{- else -}}
emptyDir:
  {{- with .Values.modelCache.emptyDir.medium }}
  medium: {{ . }}
  {{- end }}
  {{- with .Values.modelCache.emptyDir.sizeLimit }}
  sizeLimit: {{ . }}
  {{- end }}
{{- end -}}
{{- end -}}

{{/*
KEDA's view of Redis as a dict: address (host:port), db, tls, and the
username/password parsed from redis.url when it is in values. KEDA takes a
host:port, not a URL, and cannot read the worker's REDIS_URL.
*/}}
{{- define "streambed.kedaRedis" -}}
{{- $k := .Values.autoscaling.keda.redis -}}
{{- $out := dict "address" $k.address "db" "" "tls" false "username" "" "password" "" -}}
{{- if not .Values.redis.existingSecret -}}
{{- $u := urlParse .Values.redis.url -}}
{{- if not $out.address -}}
{{- /* Redis URLs may omit the port; KEDA may not. */ -}}
{{- $_ := set $out "address" (ternary $u.host (printf "%s:6379" $u.host) (regexMatch ":[0-9]+$" $u.host)) -}}
{{- end -}}
{{- $_ := set $out "tls" (eq $u.scheme "rediss") -}}
{{- $db := trimPrefix "/" $u.path -}}
{{- if $db }}{{ $_ := set $out "db" $db }}{{ end -}}
{{- if and $u.userinfo (not $k.auth.existingSecret) -}}
{{- if contains "%" $u.userinfo -}}
{{- fail "the credentials in redis.url contain characters that come back %-escaped from urlParse, and KEDA would get them escaped: put KEDA's username/password in a Secret and set autoscaling.keda.redis.auth" -}}
{{- end -}}
{{- $parts := splitn ":" 2 $u.userinfo -}}
{{- $_ := set $out "username" $parts._0 -}}
{{- $_ := set $out "password" (default "" $parts._1) -}}
{{- end -}}
{{- end -}}
{{- if not (kindIs "invalid" $k.databaseIndex) }}{{ $_ := set $out "db" (toString (int64 $k.databaseIndex)) }}{{ end -}}
{{- if not (kindIs "invalid" $k.tls) }}{{ $_ := set $out "tls" $k.tls }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Keys the chart's own Secret carries, as a dict (empty: no Secret is rendered). */}}
{{- define "streambed.secretData" -}}
{{- $data := dict -}}
{{- if not .Values.redis.existingSecret -}}
{{- $_ := set $data "redis-url" .Values.redis.url -}}
{{- end -}}
{{- if and .Values.postgres.enabled (not .Values.postgres.existingSecret) -}}
{{- $_ := set $data "pg-url" .Values.postgres.url -}}
{{- end -}}
{{- if .Values.autoscaling.keda.enabled -}}
{{- $kr := include "streambed.kedaRedis" . | fromJson -}}
{{- if not .Values.autoscaling.keda.redis.auth.existingSecret -}}
{{- if $kr.username }}{{ $_ := set $data "keda-redis-username" $kr.username }}{{ end -}}
{{- if $kr.password }}{{ $_ := set $data "keda-redis-password" $kr.password }}{{ end -}}
{{- end -}}
{{- if and $kr.tls .Values.redis.tls.existingSecret (not .Values.autoscaling.keda.redis.auth.tlsKey) -}}
{{- /* A private CA goes through the TriggerAuthentication, whose "tls" parameter comes only from a Secret. */ -}}
{{- $_ := set $data "keda-redis-tls" "enable" -}}
{{- end -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{/* Every value combination that cannot work fails here, with what to change. */}}
{{- define "streambed.validate" -}}
{{- $names := dict -}}
{{- range .Values.models -}}
{{- if hasKey $names .name -}}
{{- fail (printf "models: name %q appears twice; each name is one stream" .name) -}}
{{- end -}}
{{- $_ := set $names .name true -}}
{{- end -}}
{{- if and .Values.autoscaling.hpa.enabled .Values.autoscaling.keda.enabled -}}
{{- fail "autoscaling.hpa.enabled and autoscaling.keda.enabled are both true: KEDA creates its own HPA; enable one" -}}
{{- end -}}
{{- if and (not .Values.redis.existingSecret) (not .Values.redis.url) -}}
{{- fail "redis.url or redis.existingSecret is required" -}}
{{- end -}}
{{- if and .Values.redis.tls.existingSecret (not .Values.redis.existingSecret) (not (hasPrefix "rediss://" .Values.redis.url)) -}}
{{- fail "redis.tls.existingSecret is set but redis.url is not rediss://; the CA would be ignored" -}}
{{- end -}}
{{- $tag := printf "{%s}:" .Values.worker.keyPrefix -}}
{{- if and .Values.redis.cluster.enabled .Values.worker.replyToPattern (not (hasPrefix $tag .Values.worker.replyToPattern)) -}}
{{- fail (printf "worker.replyToPattern must begin with %q with redis.cluster.enabled: reply streams share the fleet's slot" $tag) -}}
{{- end -}}
{{- if and .Values.redis.cluster.enabled .Values.redis.sentinel.hosts -}}
{{- fail "redis.cluster.enabled and redis.sentinel.hosts are both set: Redis Cluster does its own failover; choose one" -}}
{{- end -}}
{{- if and .Values.postgres.enabled (not .Values.postgres.existingSecret) (not .Values.postgres.url) -}}
{{- fail "postgres.enabled needs postgres.url or postgres.existingSecret" -}}
{{- end -}}
{{- if and .Values.modelCache.init.enabled (not .Values.modelCache.init.command) -}}
{{- fail "modelCache.init.enabled needs modelCache.init.command: without one the init container would run the image's own command (the worker) and never finish" -}}
{{- end -}}
{{- if and .Values.modelCache.readOnly .Values.modelCache.allowRemoteModels -}}
{{- fail "modelCache.readOnly needs modelCache.allowRemoteModels: false (downloads could not be written)" -}}
{{- end -}}
{{- if .Values.autoscaling.keda.enabled -}}
{{- if and .Values.redis.existingSecret (not .Values.autoscaling.keda.redis.address) (not .Values.redis.sentinel.hosts) -}}
{{- fail "autoscaling.keda.redis.address (host:port) is required with redis.existingSecret: KEDA cannot read the URL from the Secret" -}}
{{- end -}}
{{- $auth := .Values.autoscaling.keda.redis.auth -}}
{{- if and $auth.existingSecret (not $auth.passwordKey) -}}
{{- fail "autoscaling.keda.redis.auth.existingSecret needs passwordKey" -}}
{{- end -}}
{{- if and $auth.tlsKey (not $auth.existingSecret) -}}
{{- fail "autoscaling.keda.redis.auth.tlsKey needs autoscaling.keda.redis.auth.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- $keda := .Values.autoscaling.keda -}}
{{- if and $keda.enabled (gt (int64 $keda.minReplicas) (int64 $keda.maxReplicas)) -}}
{{- fail "autoscaling.keda.minReplicas is above maxReplicas" -}}
{{- end -}}
{{- $hpa := .Values.autoscaling.hpa -}}
{{- if and $hpa.enabled (gt (int64 $hpa.minReplicas) (int64 $hpa.maxReplicas)) -}}
{{- fail "autoscaling.hpa.minReplicas is above maxReplicas" -}}
{{- end -}}
{{- end -}}

{{/*
The gateway's pods carry their own app.kubernetes.io/name, so the workers'
selectors (Service, PDB, ServiceMonitor, which select on name + instance)
never pick them up, and the gateway Service never picks up a worker.
*/}}
{{- define "streambed.gatewayName" -}}
{{- printf "%s-gateway" (include "streambed.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streambed.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-gateway" (include "streambed.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streambed.gatewayLabels" -}}
helm.sh/chart: {{ include "streambed.chart" . }}
{{ include "streambed.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "streambed.gatewayKeysDir" -}}/etc/streambed/gateway-keys{{- end -}}

{{/* Gateway drain + preStop sleep rounded up to seconds, plus the grace for closing connections. */}}
{{- define "streambed.gatewayGracePeriodSeconds" -}}
{{- $g := .Values.gateway -}}
{{- $drainS := div (add (int64 $g.drainTimeoutMs) 999) 1000 -}}
{{- add $drainS (int64 $g.preStopSleepSeconds) (int64 .Values.drainGraceSeconds) -}}
{{- end -}}

{{/* The console's own name label, as the gateway's: the workers' selectors (name + instance) never match its pod. */}}
{{- define "streambed.consoleSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-console" (include "streambed.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streambed.consoleLabels" -}}
helm.sh/chart: {{ include "streambed.chart" . }}
{{ include "streambed.consoleSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: console
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
