{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release full name; shared by the Service, ConfigMap, Secret and ServiceAccount. */}}
{{- define "berth.fullname" -}}
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

{{/* Name of one component's objects. Call with (dict "root" $ "component" "gateway"). */}}
{{- define "berth.componentName" -}}
{{- printf "%s-%s" (include "berth.fullname" .root | trunc 55 | trimSuffix "-") .component }}
{{- end }}

{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: berth
{{- end }}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* "true" when several processes share the state (split roles or several replicas), else "". */}}
{{- define "berth.distributed" -}}
{{- if or .Values.worker.enabled (gt (int .Values.gateway.replicas) 1) }}true{{ end }}
{{- end }}

{{/* The gateway Deployment's role: it also runs the worker when there is no worker Deployment. */}}
{{- define "berth.gatewayRole" -}}
{{- if .Values.worker.enabled }}gateway{{ else }}all{{ end }}
{{- end }}

{{/*
The values given inline (not through an existing Secret), as a YAML map ENV_NAME: value; the
chart's Secret holds exactly these. Key lists are passed as JSON lists.
*/}}
{{- define "berth.inlineSecretData" -}}
{{- $out := dict }}
{{- if and .Values.database.url (not .Values.database.existingSecret.name) }}
{{- $_ := set $out "DATABASE_URL" .Values.database.url }}
{{- end }}
{{- if and .Values.redis.url (not .Values.redis.existingSecret.name) }}
{{- $_ := set $out "REDIS_URL" .Values.redis.url }}
{{- end }}
{{- if and .Values.secretKey.value (not .Values.secretKey.existingSecret.name) }}
{{- $_ := set $out "OH_SECRET_KEY" .Values.secretKey.value }}
{{- end }}
{{- if and .Values.apiKeys.values (not .Values.apiKeys.existingSecret.name) }}
{{- $_ := set $out "OH_SESSION_API_KEYS" (toJson .Values.apiKeys.values) }}
{{- end }}
{{- if and .Values.adminApiKeys.values (not .Values.adminApiKeys.existingSecret.name) }}
{{- $_ := set $out "BERTH_ADMIN_API_KEYS" (toJson .Values.adminApiKeys.values) }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
One secret environment variable, from an existing Secret or from the chart's Secret, or nothing.
Call with (dict "root" $ "env" "DATABASE_URL" "ref" .Values.database.existingSecret "inline" $inline)
where $inline is the map from berth.inlineSecretData.
*/}}
{{- define "berth.secretEnvVar" -}}
{{- if .ref.name }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name | quote }}
      key: {{ .ref.key | default .env | quote }}
{{- else if hasKey .inline .env }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "berth.fullname" .root | quote }}
      key: {{ .env | quote }}
{{- end }}
{{- end }}

{{/* Environment shared by every Berth container (the ConfigMap comes in through envFrom). */}}
{{- define "berth.env" -}}
{{- $inline := include "berth.inlineSecretData" . | fromYaml -}}
- name: BERTH_DATA_DIR
  value: /data
{{- include "berth.secretEnvVar" (dict "root" . "env" "DATABASE_URL" "ref" .Values.database.existingSecret "inline" $inline) }}
{{- include "berth.secretEnvVar" (dict "root" . "env" "REDIS_URL" "ref" .Values.redis.existingSecret "inline" $inline) }}
{{- include "berth.secretEnvVar" (dict "root" . "env" "OH_SECRET_KEY" "ref" .Values.secretKey.existingSecret "inline" $inline) }}
{{- include "berth.secretEnvVar" (dict "root" . "env" "OH_SESSION_API_KEYS" "ref" .Values.apiKeys.existingSecret "inline" $inline) }}
{{- include "berth.secretEnvVar" (dict "root" . "env" "BERTH_ADMIN_API_KEYS" "ref" .Values.adminApiKeys.existingSecret "inline" $inline) }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Refuses settings that cannot work, with a message saying what to set. */}}
{{- define "berth.validate" -}}
{{- if include "berth.distributed" . }}
{{- $how := "(or run a single pod: --set worker.enabled=false,gateway.replicas=1)" }}
{{- if not (or .Values.database.url .Values.database.existingSecret.name) }}
{{- fail (printf "berth: PostgreSQL is required when gateway and workers are separate or replicated; set database.url or database.existingSecret.name %s" $how) }}
{{- end }}
{{- if not (or .Values.redis.url .Values.redis.existingSecret.name) }}
{{- fail (printf "berth: Redis is required when gateway and workers are separate or replicated; set redis.url or redis.existingSecret.name %s" $how) }}
{{- end }}
{{- if not (or .Values.secretKey.value .Values.secretKey.existingSecret.name) }}
{{- fail "berth: every replica needs the same OH_SECRET_KEY; set secretKey.value or secretKey.existingSecret.name (e.g. from `openssl rand -base64 32`)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod template shared by the gateway and worker Deployments.
Call with (dict "root" $ "component" "gateway" "role" "gateway" "values" .Values.gateway).
*/}}
{{- define "berth.podTemplate" -}}
{{- $root := .root }}
{{- $c := .values -}}
metadata:
  labels:
    {{- include "berth.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $c.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- with $c.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "berth.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken | default false }}
  # Keeps Kubernetes from adding <SERVICE>_PORT… variables (a Service named "berth" would add BERTH_*).
  enableServiceLinks: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
  {{- with $root.Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "berth.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      {{- if eq .role "worker" }}
      # Workers have their own entry point (apps/worker); it serves /health and /ready on --port.
      command: ["node", "dist/apps/worker/src/main.js"]
      {{- end }}
      args:
        - --host
        - 0.0.0.0
        - --port
        - "8000"
        - --role
        - {{ .role }}
        {{- with $c.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 8000
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "berth.fullname" $root }}
        {{- with $root.Values.extraEnvFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        {{- include "berth.env" $root | nindent 8 }}
      {{- with $c.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $c.preStopSleepSeconds }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ $c.preStopSleepSeconds | int64 }}"]
      {{- end }}
      {{- with $c.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: data
      {{- toYaml $root.Values.dataVolume | nindent 6 }}
    - name: tmp
      {{- toYaml $root.Values.tmpVolume | nindent 6 }}
  {{- with $c.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
