{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "ironbowl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: "<release>-ironbowl", or the release name when it already contains the
chart name.
*/}}
{{- define "ironbowl.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of a component's resources: "<fullname>-<component>".
Usage: include "ironbowl.componentName" (dict "root" $ "component" "web")
*/}}
{{- define "ironbowl.componentName" -}}
{{- printf "%s-%s" (include "ironbowl.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ironbowl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "ironbowl.labels" -}}
helm.sh/chart: {{ include "ironbowl.chart" . }}
{{ include "ironbowl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ironbowl
{{- end }}

{{- define "ironbowl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ironbowl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of a component's resources. Usage: include "ironbowl.componentLabels" (dict "root" $ "component" "web")
*/}}
{{- define "ironbowl.componentLabels" -}}
{{ include "ironbowl.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ironbowl.componentSelectorLabels" -}}
{{ include "ironbowl.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The container image reference: repository@digest or repository:tag (tag defaults to appVersion).
*/}}
{{- define "ironbowl.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret the application pods read: the existing one, or the chart's.
*/}}
{{- define "ironbowl.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "ironbowl.fullname" . }}
{{- end }}
{{- end }}

{{/*
Name of the Secret the migrations hook reads. The chart's regular Secret does not exist yet when a
pre-install hook runs, so the chart creates a short-lived hook Secret for it.
*/}}
{{- define "ironbowl.migrationsSecretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "ironbowl.componentName" (dict "root" . "component" "migrations") }}
{{- end }}
{{- end }}

{{/*
Checks the values that the application would otherwise reject at start-up, so that a bad release
fails at render time with a message naming the setting.
*/}}
{{- define "ironbowl.validateValues" -}}
{{- if not .Values.secrets.existingSecret }}
{{- $secretKey := required "secrets.secretKey (SECRET_KEY) is required unless secrets.existingSecret names an existing Secret" .Values.secrets.secretKey }}
{{- $databaseUrl := required "secrets.databaseUrl (DATABASE_URL) is required unless secrets.existingSecret names an existing Secret" .Values.secrets.databaseUrl }}
{{- $redisUrl := required "secrets.redisUrl (REDIS_URL) is required unless secrets.existingSecret names an existing Secret" .Values.secrets.redisUrl }}
{{- if lt (len $secretKey) 50 }}
{{- fail "secrets.secretKey (SECRET_KEY) must be at least 50 characters long" }}
{{- end }}
{{- if not (or (hasPrefix "postgres://" $databaseUrl) (hasPrefix "postgresql://" $databaseUrl)) }}
{{- fail "secrets.databaseUrl (DATABASE_URL) must be a PostgreSQL URL (postgres://... or postgresql://...)" }}
{{- end }}
{{- if not (or (hasPrefix "redis://" $redisUrl) (hasPrefix "rediss://" $redisUrl)) }}
{{- fail "secrets.redisUrl (REDIS_URL) must start with redis:// or rediss://" }}
{{- end }}
{{- end }}
{{- if and .Values.web.autoscaling.enabled (gt (int .Values.web.autoscaling.minReplicas) (int .Values.web.autoscaling.maxReplicas)) }}
{{- fail "web.autoscaling.minReplicas must not exceed web.autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled (gt (int .Values.worker.autoscaling.minReplicas) (int .Values.worker.autoscaling.maxReplicas)) }}
{{- fail "worker.autoscaling.minReplicas must not exceed worker.autoscaling.maxReplicas" }}
{{- end }}
{{- if .Values.orchestrator.enabled }}
{{- include "ironbowl.validatePools" . }}
{{- end }}
{{- end }}

{{/*
ALLOWED_HOSTS: config.allowedHosts, the ingress hosts, the probes' Host header and (with the
orchestrator) the host workers reach the web Service by, comma separated.
*/}}
{{- define "ironbowl.allowedHosts" -}}
{{- $hosts := list }}
{{- range .Values.config.allowedHosts }}{{ $hosts = append $hosts . }}{{ end }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end }}
{{- end }}
{{- $hosts = append $hosts .Values.web.probes.hostHeader }}
{{- if .Values.orchestrator.enabled }}
{{- $hosts = append $hosts (include "ironbowl.controlUrl" . | urlParse).hostname }}
{{- end }}
{{- $hosts | uniq | join "," }}
{{- end }}

{{/*
Name of the ConfigMap with the non-secret settings shared by every application container.
*/}}
{{- define "ironbowl.configMapName" -}}
{{- include "ironbowl.componentName" (dict "root" . "component" "config") }}
{{- end }}

{{/*
The non-secret settings shared by every application container, as the ConfigMap's data.
*/}}
{{- define "ironbowl.configData" -}}
{{- $data := dict
  "IRONBOWL_ENV" "production"
  "ALLOWED_HOSTS" (include "ironbowl.allowedHosts" .)
  "TIME_ZONE" (toString .Values.config.timeZone)
  "DATA_DIR" (toString .Values.config.dataDir)
  "MEDIA_ROOT" (toString .Values.media.root)
  "LOG_LEVEL" (toString .Values.config.logLevel)
  "LOG_FORMAT" (toString .Values.config.logFormat)
  "HOME" "/tmp"
  "PYTHONUNBUFFERED" "1"
  "PYTHONDONTWRITEBYTECODE" "1" }}
{{- with .Values.config.csrfTrustedOrigins }}
{{- $_ := set $data "CSRF_TRUSTED_ORIGINS" (join "," .) }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
Environment of every application container: the secrets, the component's own variables and the
user's extraEnv. The shared settings come from the config ConfigMap through envFrom, except for
hooks (inlineConfig true), which run before the release's ConfigMap exists.
Usage: include "ironbowl.env" (dict "root" $ "secretName" "<name>" "extra" (list ...) "inlineConfig" false)
A variable named in the user's extraEnv replaces the chart's variable of that name (no duplicate
names, which server-side apply rejects); env also wins over the ConfigMap's keys.
*/}}
{{- define "ironbowl.env" -}}
{{- $root := .root }}
{{- $env := list }}
{{- if .inlineConfig }}
{{- $config := include "ironbowl.configData" $root | fromYaml }}
{{- range $name := keys $config | sortAlpha }}
{{- $env = append $env (dict "name" $name "value" (index $config $name)) }}
{{- end }}
{{- end }}
{{- range list "SECRET_KEY" "DATABASE_URL" "REDIS_URL" }}
{{- $env = append $env (dict "name" . "valueFrom" (dict "secretKeyRef" (dict "name" $.secretName "key" .))) }}
{{- end }}
{{- range list "STRIPE_SECRET_KEY" "STRIPE_WEBHOOK_SECRET" "INFERENCE_LLM_API_KEY" "STREAM_KEY_ENCRYPTION_KEY" "STREAM_KEY_ENCRYPTION_KEY_FALLBACKS" }}
{{- $env = append $env (dict "name" . "valueFrom" (dict "secretKeyRef" (dict "name" $.secretName "key" . "optional" true))) }}
{{- end }}
{{- $env = concat $env (.extra | default list) }}
{{- $replaced := dict }}
{{- range $root.Values.extraEnv }}{{ $_ := set $replaced .name true }}{{ end }}
{{- $out := list }}
{{- range $env }}{{ if not (hasKey $replaced .name) }}{{ $out = append $out . }}{{ end }}{{ end }}
{{- toYaml (concat $out $root.Values.extraEnv) }}
{{- end }}

{{/*
The data of the chart-managed Secret (also used by the migrations hook Secret).
*/}}
{{- define "ironbowl.secretData" -}}
SECRET_KEY: {{ .Values.secrets.secretKey | quote }}
DATABASE_URL: {{ .Values.secrets.databaseUrl | quote }}
REDIS_URL: {{ .Values.secrets.redisUrl | quote }}
{{- with .Values.secrets.stripeSecretKey }}
STRIPE_SECRET_KEY: {{ . | quote }}
{{- end }}
{{- with .Values.secrets.stripeWebhookSecret }}
STRIPE_WEBHOOK_SECRET: {{ . | quote }}
{{- end }}
{{- with .Values.secrets.llmApiKey }}
INFERENCE_LLM_API_KEY: {{ . | quote }}
{{- end }}
{{- with .Values.secrets.streamKeyEncryptionKey }}
STREAM_KEY_ENCRYPTION_KEY: {{ . | quote }}
{{- end }}
{{- with .Values.secrets.streamKeyEncryptionKeyFallbacks }}
STREAM_KEY_ENCRYPTION_KEY_FALLBACKS: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Requests and limits from one {cpu, memory, ...} map: they are always equal (Guaranteed QoS).
*/}}
{{- define "ironbowl.resources" -}}
requests:
  {{- toYaml . | nindent 2 }}
limits:
  {{- toYaml . | nindent 2 }}
{{- end }}

{{/*
Fields shared by every application container.
Usage: include "ironbowl.containerCommon" (dict "root" $ "secretName" "<name>" "resources" .Values.web.resources "extraEnv" (list ...) "inlineConfig" false)
*/}}
{{- define "ironbowl.containerCommon" -}}
image: {{ include "ironbowl.image" .root | quote }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
workingDir: /app
env:
  {{- include "ironbowl.env" (dict "root" .root "secretName" .secretName "extra" .extraEnv "inlineConfig" .inlineConfig) | nindent 2 }}
{{- $envFrom := list }}
{{- if not .inlineConfig }}
{{- $envFrom = append $envFrom (dict "configMapRef" (dict "name" (include "ironbowl.configMapName" .root))) }}
{{- end }}
{{- $envFrom = concat $envFrom .root.Values.extraEnvFrom }}
{{- with $envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
resources:
  {{- include "ironbowl.resources" .resources | nindent 2 }}
securityContext:
  {{- toYaml .root.Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/*
Volume mounts for the writable scratch space of every application container.
*/}}
{{- define "ironbowl.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.config.dataDir }}
{{- end }}

{{- define "ironbowl.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratchSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratchSizeLimit }}
{{- end }}

{{/*
Pod template annotations as YAML: the component's own, checksums of the shared settings and of the
chart's Secret (they roll the pods when those change) and the user's podAnnotations.
Usage: include "ironbowl.podAnnotations" (dict "root" $ "extra" (dict ...))
*/}}
{{- define "ironbowl.podAnnotations" -}}
{{- $annotations := deepCopy (.extra | default dict) }}
{{- $_ := set $annotations "checksum/config" (include "ironbowl.configData" .root | sha256sum) }}
{{- if not .root.Values.secrets.existingSecret }}
{{- $_ := set $annotations "checksum/secret" (include "ironbowl.secretData" .root | sha256sum) }}
{{- end }}
{{- $annotations = merge (deepCopy .root.Values.podAnnotations) $annotations }}
{{- if $annotations }}
{{- toYaml $annotations }}
{{- end }}
{{- end }}

{{/*
Pod spec fields shared by the application pods (scheduling, security, pull secrets).
Usage: include "ironbowl.podCommon" (dict "root" $ "component" .Values.web)
*/}}
{{- define "ironbowl.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .component.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Service account lines of the pods that do not call the Kubernetes API.
*/}}
{{- define "ironbowl.appServiceAccount" -}}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
{{- end }}

{{- define "ironbowl.orchestratorServiceAccountName" -}}
{{- default (include "ironbowl.componentName" (dict "root" . "component" "orchestrator")) .Values.orchestrator.serviceAccount.name }}
{{- end }}

{{/*
Pod template metadata: component labels plus podLabels, and the pod annotations.
Usage: include "ironbowl.podMetadata" (dict "root" $ "component" "web" "annotations" (dict ...))
*/}}
{{- define "ironbowl.podMetadata" -}}
labels:
  {{- include "ironbowl.componentLabels" (dict "root" .root "component" .component) | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with (include "ironbowl.podAnnotations" (dict "root" .root "extra" .annotations) | trim) }}
annotations:
  {{- . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
INFERENCE_CONTROL_URL: inference.controlUrl, or the web Service's address inside the cluster
(workers run in the organization namespaces, so the name carries the release namespace).
*/}}
{{- define "ironbowl.controlUrl" -}}
{{- if .Values.inference.controlUrl }}
{{- .Values.inference.controlUrl }}
{{- else }}
{{- printf "http://%s.%s.svc:%v" (include "ironbowl.componentName" (dict "root" . "component" "web")) .Release.Namespace .Values.web.service.port }}
{{- end }}
{{- end }}

{{/*
pools.json, the orchestrator's pool list (the contract with inference's loader): one object per
pool with snake_case keys, the GPU class's node selector and tolerations merged in (the pool's
own node selector wins per key; tolerations add up, without duplicates).
*/}}
{{- define "ironbowl.poolsJson" -}}
{{- $root := . }}
{{- $defaultImage := printf "%s:%s" .Values.inference.workerImage.repository (default .Chart.AppVersion .Values.inference.workerImage.tag | toString) }}
{{- $pools := list }}
{{- range $pool := .Values.inference.pools }}
{{- $class := index $root.Values.inference.gpuClasses $pool.gpuClass | default dict }}
{{- $nodeSelector := merge (deepCopy ($pool.nodeSelector | default dict)) (deepCopy ($class.nodeSelector | default dict)) }}
{{- $tolerations := concat ($class.tolerations | default list) ($pool.tolerations | default list) | uniq }}
{{- $gpus := $pool.gpusPerWorker }}
{{- if kindIs "invalid" $gpus }}{{ $gpus = ternary 0 1 (eq $pool.gpuClass "cpu") }}{{ end }}
{{- $pools = append $pools (dict
  "name" $pool.name
  "pipeline" $pool.pipeline
  "model" ($pool.model | default "")
  "gpu_class" $pool.gpuClass
  "gpus_per_worker" (int $gpus)
  "slots_per_worker" (int $pool.slotsPerWorker)
  "image" ($pool.image | default $defaultImage)
  "warm_minimum" (int ($pool.warmMinimum | default 0))
  "maximum" (int $pool.maximum)
  "batch" ($pool.batch | default false)
  "node_selector" $nodeSelector
  "tolerations" $tolerations) }}
{{- end }}
{{- toPrettyJson $pools }}
{{- end }}

{{/*
Checks of the pool list that the schema cannot express; each message names the pool and value.
*/}}
{{- define "ironbowl.validatePools" -}}
{{- $seen := dict }}
{{- range $index, $pool := .Values.inference.pools }}
{{- $where := printf "inference.pools[%d] (%s)" $index $pool.name }}
{{- if hasKey $seen $pool.name }}
{{- fail (printf "%s: the pool name %q is used twice; pool names must be unique" $where $pool.name) }}
{{- end }}
{{- $_ := set $seen $pool.name true }}
{{- if not (hasKey $.Values.inference.gpuClasses $pool.gpuClass) }}
{{- fail (printf "%s: gpuClass %q has no entry in inference.gpuClasses" $where $pool.gpuClass) }}
{{- end }}
{{- $gpus := $pool.gpusPerWorker }}
{{- if kindIs "invalid" $gpus }}{{ $gpus = ternary 0 1 (eq $pool.gpuClass "cpu") }}{{ end }}
{{- if and (eq $pool.gpuClass "cpu") (gt (int $gpus) 0) }}
{{- fail (printf "%s: a cpu pool requests no GPUs; set gpusPerWorker to 0" $where) }}
{{- end }}
{{- if and (ne $pool.gpuClass "cpu") (eq (int $gpus) 0) }}
{{- fail (printf "%s: a %s pool needs gpusPerWorker of at least 1" $where $pool.gpuClass) }}
{{- end }}
{{- if gt (int ($pool.warmMinimum | default 0)) (mul (int $pool.maximum) (int $pool.slotsPerWorker)) }}
{{- fail (printf "%s: warmMinimum (%v slots) is more than the pool can hold (maximum x slotsPerWorker = %v)" $where $pool.warmMinimum (mul (int $pool.maximum) (int $pool.slotsPerWorker))) }}
{{- end }}
{{- end }}
{{- end }}
