{{/* Names, labels and the shared pieces of the controller and proxy pod specs. */}}

{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix; component suffixes are at most 11 characters, so 52 here. */}}
{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gatehouse
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "proxy"). */}}
{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gatehouse.componentLabels" -}}
{{ include "gatehouse.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gatehouse.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- define "gatehouse.controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.controller.create }}
{{- default (printf "%s-controller" (include "gatehouse.fullname" .)) .Values.serviceAccount.controller.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.controller.name }}
{{- end }}
{{- end }}

{{- define "gatehouse.proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.proxy.create }}
{{- default (printf "%s-proxy" (include "gatehouse.fullname" .)) .Values.serviceAccount.proxy.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.proxy.name }}
{{- end }}
{{- end }}

{{/* The namespace the controller watches; empty means all namespaces. */}}
{{- define "gatehouse.watchNamespace" -}}
{{- if .Values.controller.watchNamespace }}
{{- .Values.controller.watchNamespace }}
{{- else if eq .Values.rbac.scope "namespace" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{- define "gatehouse.redis.fullname" -}}
{{- printf "%s-redis" (include "gatehouse.fullname" .) }}
{{- end }}

{{/* The Redis URL, without credentials: the password comes from the environment. */}}
{{- define "gatehouse.redis.url" -}}
{{- $v := .Values.redis }}
{{- $url := $v.url }}
{{- if $v.bundled.enabled }}
{{- $url = printf "redis://%s:6379/0" (include "gatehouse.redis.fullname" .) }}
{{- end }}
{{- if not (regexMatch "^rediss?(\\+sentinel)?://" $url) }}
{{- fail (printf "redis.url must start with redis://, rediss://, redis+sentinel:// or rediss+sentinel:// (got %q); or set redis.bundled.enabled=true" $url) }}
{{- end }}
{{- if regexMatch "(^|,)[a-z+]+://[^/,]*@" $url }}
{{- fail "redis.url must not carry credentials: put the password in a Secret and set redis.passwordSecret.name" }}
{{- end }}
{{- $url }}
{{- end }}

{{/*
Env of both Gatehouse components. Both read the Redis password from
GATEHOUSE_REDIS_PASSWORD (used for every Redis connection, --config-redis included), so
it never appears in the Deployment or on a command line.
*/}}
{{- define "gatehouse.env" -}}
- name: GATEHOUSE_LOG
  value: {{ .Values.logLevel | quote }}
{{- with .Values.redis.passwordSecret.name }}
- name: GATEHOUSE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redis.passwordSecret.key }}
{{- end }}
- name: REDIS_URL
  value: {{ include "gatehouse.redis.url" . | quote }}
{{- if .Values.login.enabled }}
- name: GATEHOUSE_LOGIN_KEY_FILE
  value: /etc/gatehouse/login/{{ .Values.login.secretKey }}
{{- end }}
{{- end }}

{{/* The Secret holding the login key (an existing one, or the chart's own). */}}
{{- define "gatehouse.login.secretName" -}}
{{- .Values.login.existingSecret | default (printf "%s-login-key" (include "gatehouse.fullname" .)) -}}
{{- end }}

{{/* Volume mount and volume of the login key, for both components. */}}
{{- define "gatehouse.login.volumeMount" -}}
- name: login-key
  mountPath: /etc/gatehouse/login
  readOnly: true
{{- end }}
{{- define "gatehouse.login.volume" -}}
- name: login-key
  secret:
    secretName: {{ include "gatehouse.login.secretName" . }}
    items:
      - key: {{ .Values.login.secretKey }}
        path: {{ .Values.login.secretKey }}
{{- end }}

{{/* Default soft anti-affinity: spread replicas of a component over nodes. */}}
{{- define "gatehouse.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "gatehouse.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end }}
{{- end }}
