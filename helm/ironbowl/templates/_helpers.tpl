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
{{- end }}

{{/*
ALLOWED_HOSTS: config.allowedHosts, the ingress hosts and the probes' Host header, comma separated.
*/}}
{{- define "ironbowl.allowedHosts" -}}
{{- $hosts := list }}
{{- range .Values.config.allowedHosts }}{{ $hosts = append $hosts . }}{{ end }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end }}
{{- end }}
{{- $hosts = append $hosts .Values.web.probes.hostHeader }}
{{- $hosts | uniq | join "," }}
{{- end }}

{{/*
Environment of every application container.
Usage: include "ironbowl.env" (dict "root" $ "secretName" "<name>" "extra" (list ...))
`extra` holds the component's own variables. A variable named in the user's extraEnv replaces the
chart's variable of that name (no duplicate names, which server-side apply rejects).
*/}}
{{- define "ironbowl.env" -}}
{{- $root := .root }}
{{- $env := list
  (dict "name" "IRONBOWL_ENV" "value" "production")
  (dict "name" "ALLOWED_HOSTS" "value" (include "ironbowl.allowedHosts" $root)) }}
{{- with $root.Values.config.csrfTrustedOrigins }}
{{- $env = append $env (dict "name" "CSRF_TRUSTED_ORIGINS" "value" (join "," .)) }}
{{- end }}
{{- $env = concat $env (list
  (dict "name" "TIME_ZONE" "value" (toString $root.Values.config.timeZone))
  (dict "name" "DATA_DIR" "value" (toString $root.Values.config.dataDir))
  (dict "name" "MEDIA_ROOT" "value" (toString $root.Values.media.root))
  (dict "name" "LOG_LEVEL" "value" (toString $root.Values.config.logLevel))
  (dict "name" "LOG_FORMAT" "value" (toString $root.Values.config.logFormat))
  (dict "name" "HOME" "value" "/tmp")
  (dict "name" "PYTHONUNBUFFERED" "value" "1")
  (dict "name" "PYTHONDONTWRITEBYTECODE" "value" "1")) }}
{{- range list "SECRET_KEY" "DATABASE_URL" "REDIS_URL" }}
{{- $env = append $env (dict "name" . "valueFrom" (dict "secretKeyRef" (dict "name" $.secretName "key" .))) }}
{{- end }}
{{- range list "STRIPE_SECRET_KEY" "STRIPE_WEBHOOK_SECRET" }}
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
Usage: include "ironbowl.containerCommon" (dict "root" $ "secretName" "<name>" "resources" .Values.web.resources "extraEnv" (list ...))
*/}}
{{- define "ironbowl.containerCommon" -}}
image: {{ include "ironbowl.image" .root | quote }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
workingDir: /app
env:
  {{- include "ironbowl.env" (dict "root" .root "secretName" .secretName "extra" .extraEnv) | nindent 2 }}
{{- with .root.Values.extraEnvFrom }}
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
Pod template annotations as YAML (empty when there are none): the component's own, a checksum of
the chart's Secret (rolls the pods when it changes) and the user's podAnnotations.
Usage: include "ironbowl.podAnnotations" (dict "root" $ "extra" (dict ...))
*/}}
{{- define "ironbowl.podAnnotations" -}}
{{- $annotations := deepCopy (.extra | default dict) }}
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
