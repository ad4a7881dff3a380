/** ECR action lists that several statements share (in the templates' order). */

/** Push, read back, create and delete under a repository pattern (FerryPush, PushToDestinations). */
export const ECR_PUSH = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:InitiateLayerUpload',
  'ecr:UploadLayerPart',
  'ecr:CompleteLayerUpload',
  'ecr:PutImage',
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
  'ecr:DescribeImages',
  'ecr:DescribeRepositories',
  'ecr:CreateRepository',
  'ecr:BatchDeleteImage',
  'ecr:UpdateImageStorageClass',
  'ecr:ListImageReferrers',
];

/** ECR_PUSH with ecr:ListImages after DescribeRepositories (the destination role's PushUnderPrefix). */
export const ECR_PUSH_AND_LIST = [...ECR_PUSH.slice(0, 9), 'ecr:ListImages', ...ECR_PUSH.slice(9)];

/** Read-only listing (ListSources, ListDestinations, FerryReconcileRead). */
export const ECR_LIST = [
  'ecr:DescribeRepositories',
  'ecr:DescribeImages',
  'ecr:ListImages',
  'ecr:BatchGetImage',
  'ecr:ListImageReferrers',
];

/** Pull from the sources (PullFromSources); the last is the scan gate's. */
export const ECR_PULL = [
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
  'ecr:BatchCheckLayerAvailability',
  'ecr:DescribeImages',
  'ecr:DescribeRepositories',
  'ecr:ListImages',
  'ecr:ListImageReferrers',
  'ecr:DescribeImageScanFindings',
];

/** Reconcile's reads of the sources (ListSources): the listing, and the promotion gates' reads. */
export const ECR_LIST_SOURCES = [...ECR_LIST, 'ecr:DescribeImageScanFindings', 'ecr:GetDownloadUrlForLayer'];

/** Dispatch's reads of a gated source image (JudgeGates). */
export const ECR_JUDGE_GATES = [
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
  'ecr:DescribeImages',
  'ecr:DescribeImageScanFindings',
  'ecr:ListImageReferrers',
];

/** Read under the prefix (the destination read role's ReadUnderPrefix). */
export const ECR_READ = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
  'ecr:DescribeImages',
  'ecr:DescribeRepositories',
  'ecr:ListImages',
  'ecr:ListImageReferrers',
];
