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

{{/* An image reference from {repository, tag, digest}. Call with (dict "root" $ "image" .Values.image). */}}
{{- define "berth.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Namespace of the sandbox pods (and of the Role, RoleBinding and sandbox NetworkPolicy). */}}
{{- define "berth.sandboxNamespace" -}}
{{- .Values.sandbox.namespace | default .Release.Namespace }}
{{- end }}

{{/*
The labels of the gateway and worker pods (not the migration Job's): the only pods a sandbox
accepts connections from.
*/}}
{{- define "berth.controlPlaneLabels" -}}
{{ include "berth.selectorLabels" . }}
berth.dev/control-plane: "true"
{{- end }}

{{/* The same labels as a BERTH_K8S_CONTROL_PLANE_SELECTOR (`k=v,…`). */}}
{{- define "berth.controlPlaneSelector" -}}
{{- $parts := list }}
{{- range $key, $value := include "berth.controlPlaneLabels" . | fromYaml }}
{{- $parts = append $parts (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $parts }}
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
One secret environment variable, from an existing Secret or from the Secret named `secret`
holding the inline values, or nothing.
Call with (dict "env" "DATABASE_URL" "ref" .Values.database.existingSecret "inline" $inline "secret" $name).
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
      name: {{ .secret | quote }}
      key: {{ .env | quote }}
{{- end }}
{{- end }}

{{/* Environment shared by the gateway and worker containers (the ConfigMap comes in through envFrom). */}}
{{- define "berth.env" -}}
{{- $inline := include "berth.inlineSecretData" . | fromYaml -}}
{{- $secret := include "berth.fullname" . -}}
# The data folder is unused with the kubernetes driver; /tmp is the pod's only writable place.
- name: BERTH_DATA_DIR
  value: /tmp/berth
{{- include "berth.secretEnvVar" (dict "env" "DATABASE_URL" "ref" .Values.database.existingSecret "inline" $inline "secret" $secret) }}
{{- include "berth.secretEnvVar" (dict "env" "REDIS_URL" "ref" .Values.redis.existingSecret "inline" $inline "secret" $secret) }}
{{- include "berth.secretEnvVar" (dict "env" "OH_SECRET_KEY" "ref" .Values.secretKey.existingSecret "inline" $inline "secret" $secret) }}
{{- include "berth.secretEnvVar" (dict "env" "OH_SESSION_API_KEYS" "ref" .Values.apiKeys.existingSecret "inline" $inline "secret" $secret) }}
{{- include "berth.secretEnvVar" (dict "env" "BERTH_ADMIN_API_KEYS" "ref" .Values.adminApiKeys.existingSecret "inline" $inline "secret" $secret) }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The migration Job's DATABASE_URL: migration.database when given, else database. */}}
{{- define "berth.migrationDatabase" -}}
{{- if or .Values.migration.database.url .Values.migration.database.existingSecret.name }}
{{- toYaml .Values.migration.database }}
{{- else }}
{{- toYaml .Values.database }}
{{- end }}
{{- end }}

{{/* Refuses settings that cannot work, with a message saying what to set. */}}
{{- define "berth.validate" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret.name) }}
{{- fail "berth: PostgreSQL is required (gateways and workers share it); set database.url or database.existingSecret.name" }}
{{- end }}
{{- if not (or .Values.redis.url .Values.redis.existingSecret.name) }}
{{- fail "berth: Redis is required (the run queue and event bus); set redis.url or redis.existingSecret.name" }}
{{- end }}
{{- if not (or .Values.secretKey.value .Values.secretKey.existingSecret.name) }}
{{- fail "berth: every replica needs the same OH_SECRET_KEY; set secretKey.value or secretKey.existingSecret.name (e.g. from `openssl rand -base64 32`)" }}
{{- end }}
{{- if and (ne (include "berth.sandboxNamespace" .) .Release.Namespace) (not .Values.sandbox.networkPolicy.enabled) }}
{{- fail "berth: with sandbox.namespace other than the release's, sandbox.networkPolicy.enabled must stay true: the driver's per-sandbox policies admit only pods of the sandbox namespace" }}
{{- end }}
{{- if not .Values.executorImage.repository }}
{{- fail "berth: sandboxes need the executor image (deploy/executor.Dockerfile); set executorImage.repository" }}
{{- end }}
{{- end }}

{{/* The pod-level settings every pod of the chart shares (security, pull secrets, no service links). */}}
{{- define "berth.podSecurity" -}}
# Keeps Kubernetes from adding <SERVICE>_PORT… variables (a Service named "berth" would add BERTH_*).
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Pod template shared by the gateway and worker Deployments.
Call with (dict "root" $ "component" "gateway" "args" (list …) "values" .Values.gateway).
*/}}
{{- define "berth.podTemplate" -}}
{{- $root := .root }}
{{- $c := .values -}}
metadata:
  labels:
    {{- include "berth.controlPlaneLabels" $root | nindent 4 }}
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
  # The kubernetes sandbox driver talks to the API server with this token.
  automountServiceAccountToken: true
  {{- include "berth.podSecurity" $root | nindent 2 }}
  terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
  containers:
    - name: {{ .component }}
      image: {{ include "berth.imageRef" (dict "root" $root "image" $root.Values.image) | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      # After the image's entry point (tini, then node).
      args:
        {{- toYaml .args | nindent 8 }}
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
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
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
