// Validate Argo CD and Flux objects against their CRD schemas.
// stdin: a JSON array of objects; stdout: a JSON array of {kind, name, errors: [...]}.
import {Application, ApplicationSet} from '@kubernetes-models/argo-cd/argoproj.io/v1alpha1';
import {Kustomization} from '@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1';
import {GitRepository} from '@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1';

const models = {
  'argoproj.io/v1alpha1 Application': Application,
  'argoproj.io/v1alpha1 ApplicationSet': ApplicationSet,
  'kustomize.toolkit.fluxcd.io/v1 Kustomization': Kustomization,
  'source.toolkit.fluxcd.io/v1 GitRepository': GitRepository,
};

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((obj) => {
  const Model = models[`${obj.apiVersion} ${obj.kind}`];
  const name = obj.metadata?.name;
  if (!Model) return {kind: obj.kind, name, errors: [`no schema for ${obj.apiVersion} ${obj.kind}`]};
  try {
    new Model(obj).validate();
    return {kind: obj.kind, name, errors: []};
  } catch (e) {
    return {kind: obj.kind, name, errors: (e.errors || [e]).map((x) => `${x.instancePath || ''} ${x.message}`)};
  }
});
process.stdout.write(JSON.stringify(results));
