{{/* vim: set filetype=mustache: */}}
{{/*
The RayCluster spec built here is mirrored by optimizer/kube/objects.py (raycluster_spec), which `reflectopt submit
--ephemeral` uses; tests/test_helm_chart.py checks that both produce the same spec. Change them together.
*/}}

{{- define "reflectopt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 53 | trimSuffix "-" -}}
{{- end -}}

{{/* The RayCluster's name: KubeRay allows at most 53 characters. */}}
{{- define "reflectopt.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 53 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 53 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 53 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "reflectopt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reflectopt.labels" -}}
helm.sh/chart: {{ include "reflectopt.chart" . }}
app.kubernetes.io/name: {{ include "reflectopt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "reflectopt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "reflectopt.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* GPU share of one world: 1/perGpu rounded down to 4 decimals (Ray's resource precision); 0 without GPU groups. */}}
{{- define "reflectopt.gpuPerWorld" -}}
{{- if .Values.gpuWorkerGroups -}}
{{- printf "%g" (divf (div 10000 (int .Values.worlds.perGpu)) 10000) -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/* Kubernetes quantity as a string (numbers in values are allowed). */}}
{{- define "reflectopt.quantity" -}}
{{- if kindIs "string" . -}}{{ . }}{{- else -}}{{ printf "%g" (float64 .) }}{{- end -}}
{{- end -}}

{{/*
One pod template for every group (head, GPU workers, CPU workers).
Call with (dict "root" $ "group" <group values> "component" "head"|"worker" "container" <name> "gpus" <int> "cpu" <quantity>)
*/}}
{{- define "reflectopt.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $g := .group -}}
{{- $sec := $v.podSecurity -}}
metadata:
  labels:
    {{- merge (dict "app.kubernetes.io/name" (include "reflectopt.name" $root) "app.kubernetes.io/component" .component) (deepCopy (default (dict) $g.labels)) | toYaml | nindent 4 }}
  {{- with $g.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "reflectopt.serviceAccountName" $root }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ $sec.runAsUser }}
    runAsGroup: {{ $sec.runAsGroup }}
    fsGroup: {{ $sec.fsGroup }}
    seccompProfile:
      type: RuntimeDefault
  {{- with $g.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      env:
        - name: REFLECTOPT_GPU_PER_WORLD
          value: {{ include "reflectopt.gpuPerWorld" $root | quote }}
        - name: REFLECTOPT_CPU_PER_WORLD
          value: {{ printf "%g" (float64 $v.worlds.cpuPerWorld) | quote }}
        - name: REFLECTOPT_DEVICE
          value: {{ $v.device | quote }}
        - name: REFLECTOPT_CACHE_DIR
          value: /home/ray/.cache/reflectopt
        - name: AWS_REGION
          value: {{ $v.s3.region | quote }}
        - name: AWS_DEFAULT_REGION
          value: {{ $v.s3.region | quote }}
        {{- with $v.s3.endpoint }}
        - name: AWS_ENDPOINT_URL
          value: {{ . | quote }}
        {{- end }}
        {{- with $v.s3.credentials.existingSecret }}
        - name: AWS_ACCESS_KEY_ID
          valueFrom:
            secretKeyRef:
              name: {{ . }}
              key: {{ $v.s3.credentials.accessKeyIdKey }}
        - name: AWS_SECRET_ACCESS_KEY
          valueFrom:
            secretKeyRef:
              name: {{ . }}
              key: {{ $v.s3.credentials.secretAccessKeyKey }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $g.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        requests:
          cpu: {{ .cpu | quote }}
          memory: {{ include "reflectopt.quantity" $g.memory | quote }}
          {{- if gt (int .gpus) 0 }}
          nvidia.com/gpu: {{ .gpus | quote }}
          {{- end }}
        limits:
          cpu: {{ .cpu | quote }}
          memory: {{ include "reflectopt.quantity" $g.memory | quote }}
          {{- if gt (int .gpus) 0 }}
          nvidia.com/gpu: {{ .gpus | quote }}
          {{- end }}
      securityContext:
        {{- include "reflectopt.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - name: dshm
          mountPath: /dev/shm
        {{- range $i, $p := $sec.writablePaths }}
        - name: {{ printf "writable-%d" $i }}
          mountPath: {{ $p }}
        {{- end }}
  volumes:
    - name: dshm
      emptyDir:
        medium: Memory
    {{- range $i, $p := $sec.writablePaths }}
    - name: {{ printf "writable-%d" $i }}
      emptyDir: {}
    {{- end }}
{{- end -}}

{{- define "reflectopt.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.podSecurity.readOnlyRootFilesystem }}
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* CPU of a GPU worker pod: the value, or gpus*perGpu*cpuPerWorld (+1 for Ray) in millicores. */}}
{{- define "reflectopt.gpuGroupCpu" -}}
{{- $v := .root.Values -}}
{{- if .group.cpu -}}
{{- include "reflectopt.quantity" .group.cpu -}}
{{- else -}}
{{- printf "%dm" (add (int (ceil (mulf (mulf (int .group.gpus) (int $v.worlds.perGpu)) $v.worlds.cpuPerWorld 1000))) 1000) -}}
{{- end -}}
{{- end -}}

{{/* rayStartParams (string values) as a YAML mapping; `extra` holds the chart's own entries (user values win). */}}
{{- define "reflectopt.rayStartParams" -}}
{{- $p := merge (deepCopy (default (dict) .group.rayStartParams)) .extra -}}
{{- if $p -}}
{{- toYaml $p -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}
