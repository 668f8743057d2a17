/**
 * DICOM Storage SOP Classes (PS3.4 Annex B and the other storage-like services) with their
 * PS3.6 Table A-1 keywords, plus the Verification and Query/Retrieve classes the server serves.
 *
 * Sources: PS3.6 Table A-1 as carried by pydicom's `_uid_dict.py` (names, keywords, retired
 * flags) and DCMTK's `dcmAllStorageSOPClassUIDs` / `dcmNonPatientStorageSOPClassUIDs`
 * (`dcmdata/libsrc/dcuid.cc`), so everything storescp accepts is accepted here too.
 * Names are PS3.6's with the "(Retired)" suffix dropped; `retired` carries it instead.
 */

export interface SopClass {
  readonly uid: string;
  /** PS3.6 keyword, e.g. `CTImageStorage`. Differs from DCMTK's names in places (`MultiFrame`). */
  readonly keyword: string;
  readonly name: string;
  readonly retired: boolean;
}

export const storageSopClasses: readonly SopClass[] = [
  // PS3.4 B.5: Storage SOP Classes of the Patient/Study/Series/Instance model, in UID order.
  { uid: '1.2.840.10008.5.1.1.27', keyword: 'StoredPrintStorage', name: 'Stored Print Storage SOP Class', retired: true },
  {
    uid: '1.2.840.10008.5.1.1.29',
    keyword: 'HardcopyGrayscaleImageStorage',
    name: 'Hardcopy Grayscale Image Storage SOP Class',
    retired: true,
  },
  { uid: '1.2.840.10008.5.1.1.30', keyword: 'HardcopyColorImageStorage', name: 'Hardcopy Color Image Storage SOP Class', retired: true },
  {
    uid: '1.2.840.10008.5.1.4.1.1.1',
    keyword: 'ComputedRadiographyImageStorage',
    name: 'Computed Radiography Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.1.1',
    keyword: 'DigitalXRayImageStorageForPresentation',
    name: 'Digital X-Ray Image Storage - For Presentation',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.1.1.1',
    keyword: 'DigitalXRayImageStorageForProcessing',
    name: 'Digital X-Ray Image Storage - For Processing',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.1.2',
    keyword: 'DigitalMammographyXRayImageStorageForPresentation',
    name: 'Digital Mammography X-Ray Image Storage - For Presentation',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.1.2.1',
    keyword: 'DigitalMammographyXRayImageStorageForProcessing',
    name: 'Digital Mammography X-Ray Image Storage - For Processing',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.1.3',
    keyword: 'DigitalIntraOralXRayImageStorageForPresentation',
    name: 'Digital Intra-Oral X-Ray Image Storage - For Presentation',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.1.3.1',
    keyword: 'DigitalIntraOralXRayImageStorageForProcessing',
    name: 'Digital Intra-Oral X-Ray Image Storage - For Processing',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.2', keyword: 'CTImageStorage', name: 'CT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.2.1', keyword: 'EnhancedCTImageStorage', name: 'Enhanced CT Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.2.2',
    keyword: 'LegacyConvertedEnhancedCTImageStorage',
    name: 'Legacy Converted Enhanced CT Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.3',
    keyword: 'UltrasoundMultiFrameImageStorageRetired',
    name: 'Ultrasound Multi-frame Image Storage',
    retired: true,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.3.1',
    keyword: 'UltrasoundMultiFrameImageStorage',
    name: 'Ultrasound Multi-frame Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.4', keyword: 'MRImageStorage', name: 'MR Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4.1', keyword: 'EnhancedMRImageStorage', name: 'Enhanced MR Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4.2', keyword: 'MRSpectroscopyStorage', name: 'MR Spectroscopy Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.4.3', keyword: 'EnhancedMRColorImageStorage', name: 'Enhanced MR Color Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.4.4',
    keyword: 'LegacyConvertedEnhancedMRImageStorage',
    name: 'Legacy Converted Enhanced MR Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.5',
    keyword: 'NuclearMedicineImageStorageRetired',
    name: 'Nuclear Medicine Image Storage',
    retired: true,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.6', keyword: 'UltrasoundImageStorageRetired', name: 'Ultrasound Image Storage', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.6.1', keyword: 'UltrasoundImageStorage', name: 'Ultrasound Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.6.2', keyword: 'EnhancedUSVolumeStorage', name: 'Enhanced US Volume Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.6.3', keyword: 'PhotoacousticImageStorage', name: 'Photoacoustic Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.7', keyword: 'SecondaryCaptureImageStorage', name: 'Secondary Capture Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.7.1',
    keyword: 'MultiFrameSingleBitSecondaryCaptureImageStorage',
    name: 'Multi-frame Single Bit Secondary Capture Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.7.2',
    keyword: 'MultiFrameGrayscaleByteSecondaryCaptureImageStorage',
    name: 'Multi-frame Grayscale Byte Secondary Capture Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.7.3',
    keyword: 'MultiFrameGrayscaleWordSecondaryCaptureImageStorage',
    name: 'Multi-frame Grayscale Word Secondary Capture Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.7.4',
    keyword: 'MultiFrameTrueColorSecondaryCaptureImageStorage',
    name: 'Multi-frame True Color Secondary Capture Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.8', keyword: 'StandaloneOverlayStorage', name: 'Standalone Overlay Storage', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.9', keyword: 'StandaloneCurveStorage', name: 'Standalone Curve Storage', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1', keyword: 'WaveformStorageTrial', name: 'Waveform Storage - Trial', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1.1', keyword: 'TwelveLeadECGWaveformStorage', name: '12-lead ECG Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.9.1.2', keyword: 'GeneralECGWaveformStorage', name: 'General ECG Waveform Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.1.3',
    keyword: 'AmbulatoryECGWaveformStorage',
    name: 'Ambulatory ECG Waveform Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.1.4',
    keyword: 'General32bitECGWaveformStorage',
    name: 'General 32-bit ECG Waveform Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.9.2.1', keyword: 'HemodynamicWaveformStorage', name: 'Hemodynamic Waveform Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.3.1',
    keyword: 'CardiacElectrophysiologyWaveformStorage',
    name: 'Cardiac Electrophysiology Waveform Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.4.1',
    keyword: 'BasicVoiceAudioWaveformStorage',
    name: 'Basic Voice Audio Waveform Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.9.4.2', keyword: 'GeneralAudioWaveformStorage', name: 'General Audio Waveform Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.5.1',
    keyword: 'ArterialPulseWaveformStorage',
    name: 'Arterial Pulse Waveform Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.9.6.1', keyword: 'RespiratoryWaveformStorage', name: 'Respiratory Waveform Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.6.2',
    keyword: 'MultichannelRespiratoryWaveformStorage',
    name: 'Multi-channel Respiratory Waveform Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.7.1',
    keyword: 'RoutineScalpElectroencephalogramWaveformStorage',
    name: 'Routine Scalp Electroencephalogram Waveform Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.7.2',
    keyword: 'ElectromyogramWaveformStorage',
    name: 'Electromyogram Waveform Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.7.3',
    keyword: 'ElectrooculogramWaveformStorage',
    name: 'Electrooculogram Waveform Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.9.7.4',
    keyword: 'SleepElectroencephalogramWaveformStorage',
    name: 'Sleep Electroencephalogram Waveform Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.9.8.1', keyword: 'BodyPositionWaveformStorage', name: 'Body Position Waveform Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.10', keyword: 'StandaloneModalityLUTStorage', name: 'Standalone Modality LUT Storage', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.11', keyword: 'StandaloneVOILUTStorage', name: 'Standalone VOI LUT Storage', retired: true },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.1',
    keyword: 'GrayscaleSoftcopyPresentationStateStorage',
    name: 'Grayscale Softcopy Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.2',
    keyword: 'ColorSoftcopyPresentationStateStorage',
    name: 'Color Softcopy Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.3',
    keyword: 'PseudoColorSoftcopyPresentationStateStorage',
    name: 'Pseudo-Color Softcopy Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.4',
    keyword: 'BlendingSoftcopyPresentationStateStorage',
    name: 'Blending Softcopy Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.5',
    keyword: 'XAXRFGrayscaleSoftcopyPresentationStateStorage',
    name: 'XA/XRF Grayscale Softcopy Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.6',
    keyword: 'GrayscalePlanarMPRVolumetricPresentationStateStorage',
    name: 'Grayscale Planar MPR Volumetric Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.7',
    keyword: 'CompositingPlanarMPRVolumetricPresentationStateStorage',
    name: 'Compositing Planar MPR Volumetric Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.8',
    keyword: 'AdvancedBlendingPresentationStateStorage',
    name: 'Advanced Blending Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.9',
    keyword: 'VolumeRenderingVolumetricPresentationStateStorage',
    name: 'Volume Rendering Volumetric Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.10',
    keyword: 'SegmentedVolumeRenderingVolumetricPresentationStateStorage',
    name: 'Segmented Volume Rendering Volumetric Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.11',
    keyword: 'MultipleVolumeRenderingVolumetricPresentationStateStorage',
    name: 'Multiple Volume Rendering Volumetric Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.11.12',
    keyword: 'VariableModalityLUTSoftcopyPresentationStateStorage',
    name: 'Variable Modality LUT Softcopy Presentation State Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.12.1',
    keyword: 'XRayAngiographicImageStorage',
    name: 'X-Ray Angiographic Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.12.1.1', keyword: 'EnhancedXAImageStorage', name: 'Enhanced XA Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.12.2',
    keyword: 'XRayRadiofluoroscopicImageStorage',
    name: 'X-Ray Radiofluoroscopic Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.12.2.1', keyword: 'EnhancedXRFImageStorage', name: 'Enhanced XRF Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.12.3',
    keyword: 'XRayAngiographicBiPlaneImageStorage',
    name: 'X-Ray Angiographic Bi-Plane Image Storage',
    retired: true,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.13.1.1',
    keyword: 'XRay3DAngiographicImageStorage',
    name: 'X-Ray 3D Angiographic Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.13.1.2',
    keyword: 'XRay3DCraniofacialImageStorage',
    name: 'X-Ray 3D Craniofacial Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.13.1.3',
    keyword: 'BreastTomosynthesisImageStorage',
    name: 'Breast Tomosynthesis Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.13.1.4',
    keyword: 'BreastProjectionXRayImageStorageForPresentation',
    name: 'Breast Projection X-Ray Image Storage - For Presentation',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.13.1.5',
    keyword: 'BreastProjectionXRayImageStorageForProcessing',
    name: 'Breast Projection X-Ray Image Storage - For Processing',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.14.1',
    keyword: 'IntravascularOpticalCoherenceTomographyImageStorageForPresentation',
    name: 'Intravascular Optical Coherence Tomography Image Storage - For Presentation',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.14.2',
    keyword: 'IntravascularOpticalCoherenceTomographyImageStorageForProcessing',
    name: 'Intravascular Optical Coherence Tomography Image Storage - For Processing',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.20', keyword: 'NuclearMedicineImageStorage', name: 'Nuclear Medicine Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.30', keyword: 'ParametricMapStorage', name: 'Parametric Map Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66', keyword: 'RawDataStorage', name: 'Raw Data Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.1', keyword: 'SpatialRegistrationStorage', name: 'Spatial Registration Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.2', keyword: 'SpatialFiducialsStorage', name: 'Spatial Fiducials Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.66.3',
    keyword: 'DeformableSpatialRegistrationStorage',
    name: 'Deformable Spatial Registration Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.66.4', keyword: 'SegmentationStorage', name: 'Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.5', keyword: 'SurfaceSegmentationStorage', name: 'Surface Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.6', keyword: 'TractographyResultsStorage', name: 'Tractography Results Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.7', keyword: 'LabelMapSegmentationStorage', name: 'Label Map Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.66.8', keyword: 'HeightMapSegmentationStorage', name: 'Height Map Segmentation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.67', keyword: 'RealWorldValueMappingStorage', name: 'Real World Value Mapping Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.68.1', keyword: 'SurfaceScanMeshStorage', name: 'Surface Scan Mesh Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.68.2',
    keyword: 'SurfaceScanPointCloudStorage',
    name: 'Surface Scan Point Cloud Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1', keyword: 'VLImageStorageTrial', name: 'VL Image Storage - Trial', retired: true },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.2',
    keyword: 'VLMultiFrameImageStorageTrial',
    name: 'VL Multi-frame Image Storage - Trial',
    retired: true,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.1', keyword: 'VLEndoscopicImageStorage', name: 'VL Endoscopic Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.1.1',
    keyword: 'VideoEndoscopicImageStorage',
    name: 'Video Endoscopic Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.2', keyword: 'VLMicroscopicImageStorage', name: 'VL Microscopic Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.2.1',
    keyword: 'VideoMicroscopicImageStorage',
    name: 'Video Microscopic Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.3',
    keyword: 'VLSlideCoordinatesMicroscopicImageStorage',
    name: 'VL Slide-Coordinates Microscopic Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.77.1.4', keyword: 'VLPhotographicImageStorage', name: 'VL Photographic Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.4.1',
    keyword: 'VideoPhotographicImageStorage',
    name: 'Video Photographic Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.1',
    keyword: 'OphthalmicPhotography8BitImageStorage',
    name: 'Ophthalmic Photography 8 Bit Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.2',
    keyword: 'OphthalmicPhotography16BitImageStorage',
    name: 'Ophthalmic Photography 16 Bit Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.3',
    keyword: 'StereometricRelationshipStorage',
    name: 'Stereometric Relationship Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.4',
    keyword: 'OphthalmicTomographyImageStorage',
    name: 'Ophthalmic Tomography Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.5',
    keyword: 'WideFieldOphthalmicPhotographyStereographicProjectionImageStorage',
    name: 'Wide Field Ophthalmic Photography Stereographic Projection Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.6',
    keyword: 'WideFieldOphthalmicPhotography3DCoordinatesImageStorage',
    name: 'Wide Field Ophthalmic Photography 3D Coordinates Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.7',
    keyword: 'OphthalmicOpticalCoherenceTomographyEnFaceImageStorage',
    name: 'Ophthalmic Optical Coherence Tomography En Face Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.5.8',
    keyword: 'OphthalmicOpticalCoherenceTomographyBscanVolumeAnalysisStorage',
    name: 'Ophthalmic Optical Coherence Tomography B-scan Volume Analysis Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.6',
    keyword: 'VLWholeSlideMicroscopyImageStorage',
    name: 'VL Whole Slide Microscopy Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.7',
    keyword: 'DermoscopicPhotographyImageStorage',
    name: 'Dermoscopic Photography Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.8',
    keyword: 'ConfocalMicroscopyImageStorage',
    name: 'Confocal Microscopy Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.77.1.9',
    keyword: 'ConfocalMicroscopyTiledPyramidalImageStorage',
    name: 'Confocal Microscopy Tiled Pyramidal Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.1',
    keyword: 'LensometryMeasurementsStorage',
    name: 'Lensometry Measurements Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.2',
    keyword: 'AutorefractionMeasurementsStorage',
    name: 'Autorefraction Measurements Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.3',
    keyword: 'KeratometryMeasurementsStorage',
    name: 'Keratometry Measurements Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.4',
    keyword: 'SubjectiveRefractionMeasurementsStorage',
    name: 'Subjective Refraction Measurements Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.5',
    keyword: 'VisualAcuityMeasurementsStorage',
    name: 'Visual Acuity Measurements Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.6',
    keyword: 'SpectaclePrescriptionReportStorage',
    name: 'Spectacle Prescription Report Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.7',
    keyword: 'OphthalmicAxialMeasurementsStorage',
    name: 'Ophthalmic Axial Measurements Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.78.8',
    keyword: 'IntraocularLensCalculationsStorage',
    name: 'Intraocular Lens Calculations Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.79.1',
    keyword: 'MacularGridThicknessAndVolumeReportStorage',
    name: 'Macular Grid Thickness and Volume Report Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.80.1',
    keyword: 'OphthalmicVisualFieldStaticPerimetryMeasurementsStorage',
    name: 'Ophthalmic Visual Field Static Perimetry Measurements Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.81.1',
    keyword: 'OphthalmicThicknessMapStorage',
    name: 'Ophthalmic Thickness Map Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.82.1', keyword: 'CornealTopographyMapStorage', name: 'Corneal Topography Map Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.1', keyword: 'TextSRStorageTrial', name: 'Text SR Storage - Trial', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.2', keyword: 'AudioSRStorageTrial', name: 'Audio SR Storage - Trial', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.3', keyword: 'DetailSRStorageTrial', name: 'Detail SR Storage - Trial', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.4', keyword: 'ComprehensiveSRStorageTrial', name: 'Comprehensive SR Storage - Trial', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.88.11', keyword: 'BasicTextSRStorage', name: 'Basic Text SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.22', keyword: 'EnhancedSRStorage', name: 'Enhanced SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.33', keyword: 'ComprehensiveSRStorage', name: 'Comprehensive SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.34', keyword: 'Comprehensive3DSRStorage', name: 'Comprehensive 3D SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.35', keyword: 'ExtensibleSRStorage', name: 'Extensible SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.40', keyword: 'ProcedureLogStorage', name: 'Procedure Log Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.50', keyword: 'MammographyCADSRStorage', name: 'Mammography CAD SR Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.88.59',
    keyword: 'KeyObjectSelectionDocumentStorage',
    name: 'Key Object Selection Document Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.88.65', keyword: 'ChestCADSRStorage', name: 'Chest CAD SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.67', keyword: 'XRayRadiationDoseSRStorage', name: 'X-Ray Radiation Dose SR Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.88.68',
    keyword: 'RadiopharmaceuticalRadiationDoseSRStorage',
    name: 'Radiopharmaceutical Radiation Dose SR Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.88.69', keyword: 'ColonCADSRStorage', name: 'Colon CAD SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.70', keyword: 'ImplantationPlanSRStorage', name: 'Implantation Plan SR Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.88.71', keyword: 'AcquisitionContextSRStorage', name: 'Acquisition Context SR Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.88.72',
    keyword: 'SimplifiedAdultEchoSRStorage',
    name: 'Simplified Adult Echo SR Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.88.73',
    keyword: 'PatientRadiationDoseSRStorage',
    name: 'Patient Radiation Dose SR Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.88.74',
    keyword: 'PlannedImagingAgentAdministrationSRStorage',
    name: 'Planned Imaging Agent Administration SR Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.88.75',
    keyword: 'PerformedImagingAgentAdministrationSRStorage',
    name: 'Performed Imaging Agent Administration SR Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.88.76',
    keyword: 'EnhancedXRayRadiationDoseSRStorage',
    name: 'Enhanced X-Ray Radiation Dose SR Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.88.77', keyword: 'WaveformAnnotationSRStorage', name: 'Waveform Annotation SR Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.90.1',
    keyword: 'ContentAssessmentResultsStorage',
    name: 'Content Assessment Results Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.91.1',
    keyword: 'MicroscopyBulkSimpleAnnotationsStorage',
    name: 'Microscopy Bulk Simple Annotations Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.104.1', keyword: 'EncapsulatedPDFStorage', name: 'Encapsulated PDF Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.2', keyword: 'EncapsulatedCDAStorage', name: 'Encapsulated CDA Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.3', keyword: 'EncapsulatedSTLStorage', name: 'Encapsulated STL Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.4', keyword: 'EncapsulatedOBJStorage', name: 'Encapsulated OBJ Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.104.5', keyword: 'EncapsulatedMTLStorage', name: 'Encapsulated MTL Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.128',
    keyword: 'PositronEmissionTomographyImageStorage',
    name: 'Positron Emission Tomography Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.128.1',
    keyword: 'LegacyConvertedEnhancedPETImageStorage',
    name: 'Legacy Converted Enhanced PET Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.129', keyword: 'StandalonePETCurveStorage', name: 'Standalone PET Curve Storage', retired: true },
  { uid: '1.2.840.10008.5.1.4.1.1.130', keyword: 'EnhancedPETImageStorage', name: 'Enhanced PET Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.131',
    keyword: 'BasicStructuredDisplayStorage',
    name: 'Basic Structured Display Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.200.2',
    keyword: 'CTPerformedProcedureProtocolStorage',
    name: 'CT Performed Procedure Protocol Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.200.8',
    keyword: 'XAPerformedProcedureProtocolStorage',
    name: 'XA Performed Procedure Protocol Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.481.1', keyword: 'RTImageStorage', name: 'RT Image Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.2', keyword: 'RTDoseStorage', name: 'RT Dose Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.3', keyword: 'RTStructureSetStorage', name: 'RT Structure Set Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.4',
    keyword: 'RTBeamsTreatmentRecordStorage',
    name: 'RT Beams Treatment Record Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.481.5', keyword: 'RTPlanStorage', name: 'RT Plan Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.6',
    keyword: 'RTBrachyTreatmentRecordStorage',
    name: 'RT Brachy Treatment Record Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.7',
    keyword: 'RTTreatmentSummaryRecordStorage',
    name: 'RT Treatment Summary Record Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.481.8', keyword: 'RTIonPlanStorage', name: 'RT Ion Plan Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.9',
    keyword: 'RTIonBeamsTreatmentRecordStorage',
    name: 'RT Ion Beams Treatment Record Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.481.10', keyword: 'RTPhysicianIntentStorage', name: 'RT Physician Intent Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.11', keyword: 'RTSegmentAnnotationStorage', name: 'RT Segment Annotation Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.481.12', keyword: 'RTRadiationSetStorage', name: 'RT Radiation Set Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.13',
    keyword: 'CArmPhotonElectronRadiationStorage',
    name: 'C-Arm Photon-Electron Radiation Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.14',
    keyword: 'TomotherapeuticRadiationStorage',
    name: 'Tomotherapeutic Radiation Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.481.15', keyword: 'RoboticArmRadiationStorage', name: 'Robotic-Arm Radiation Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.16',
    keyword: 'RTRadiationRecordSetStorage',
    name: 'RT Radiation Record Set Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.17',
    keyword: 'RTRadiationSalvageRecordStorage',
    name: 'RT Radiation Salvage Record Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.18',
    keyword: 'TomotherapeuticRadiationRecordStorage',
    name: 'Tomotherapeutic Radiation Record Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.19',
    keyword: 'CArmPhotonElectronRadiationRecordStorage',
    name: 'C-Arm Photon-Electron Radiation Record Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.20',
    keyword: 'RoboticRadiationRecordStorage',
    name: 'Robotic Radiation Record Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.21',
    keyword: 'RTRadiationSetDeliveryInstructionStorage',
    name: 'RT Radiation Set Delivery Instruction Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.22',
    keyword: 'RTTreatmentPreparationStorage',
    name: 'RT Treatment Preparation Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.481.23', keyword: 'EnhancedRTImageStorage', name: 'Enhanced RT Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.24',
    keyword: 'EnhancedContinuousRTImageStorage',
    name: 'Enhanced Continuous RT Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.481.25',
    keyword: 'RTPatientPositionAcquisitionInstructionStorage',
    name: 'RT Patient Position Acquisition Instruction Storage',
    retired: false,
  },
  // Registered in PS3.6 for NEMA DICOS (security screening) and ASTM DICONDE (NDE); DCMTK accepts them.
  { uid: '1.2.840.10008.5.1.4.1.1.501.1', keyword: 'DICOSCTImageStorage', name: 'DICOS CT Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.501.2.1',
    keyword: 'DICOSDigitalXRayImageStorageForPresentation',
    name: 'DICOS Digital X-Ray Image Storage - For Presentation',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.501.2.2',
    keyword: 'DICOSDigitalXRayImageStorageForProcessing',
    name: 'DICOS Digital X-Ray Image Storage - For Processing',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.1.1.501.3',
    keyword: 'DICOSThreatDetectionReportStorage',
    name: 'DICOS Threat Detection Report Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.501.4', keyword: 'DICOS2DAITStorage', name: 'DICOS 2D AIT Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.1.1.501.5', keyword: 'DICOS3DAITStorage', name: 'DICOS 3D AIT Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.501.6',
    keyword: 'DICOSQuadrupoleResonanceStorage',
    name: 'DICOS Quadrupole Resonance (QR) Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.601.1', keyword: 'EddyCurrentImageStorage', name: 'Eddy Current Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.601.2',
    keyword: 'EddyCurrentMultiFrameImageStorage',
    name: 'Eddy Current Multi-frame Image Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.601.3', keyword: 'ThermographyImageStorage', name: 'Thermography Image Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.601.4',
    keyword: 'ThermographyMultiFrameImageStorage',
    name: 'Thermography Multi-frame Image Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.34.1',
    keyword: 'RTBeamsDeliveryInstructionStorageTrial',
    name: 'RT Beams Delivery Instruction Storage - Trial',
    retired: true,
  },
  {
    uid: '1.2.840.10008.5.1.4.34.7',
    keyword: 'RTBeamsDeliveryInstructionStorage',
    name: 'RT Beams Delivery Instruction Storage',
    retired: false,
  },
  {
    uid: '1.2.840.10008.5.1.4.34.10',
    keyword: 'RTBrachyApplicationSetupDeliveryInstructionStorage',
    name: 'RT Brachy Application Setup Delivery Instruction Storage',
    retired: false,
  },

  // Stored with C-STORE too, but not Patient/Study/Series objects: they carry no Patient ID or
  // Study Instance UID (DCMTK keeps them apart in dcmNonPatientStorageSOPClassUIDs).
  {
    uid: '1.2.840.10008.5.1.4.1.1.200.1',
    keyword: 'CTDefinedProcedureProtocolStorage',
    name: 'CT Defined Procedure Protocol Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.200.3', keyword: 'ProtocolApprovalStorage', name: 'Protocol Approval Storage', retired: false },
  {
    uid: '1.2.840.10008.5.1.4.1.1.200.7',
    keyword: 'XADefinedProcedureProtocolStorage',
    name: 'XA Defined Procedure Protocol Storage',
    retired: false,
  },
  { uid: '1.2.840.10008.5.1.4.1.1.201.1', keyword: 'InventoryStorage', name: 'Inventory Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.38.1', keyword: 'HangingProtocolStorage', name: 'Hanging Protocol Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.39.1', keyword: 'ColorPaletteStorage', name: 'Color Palette Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.43.1', keyword: 'GenericImplantTemplateStorage', name: 'Generic Implant Template Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.44.1', keyword: 'ImplantAssemblyTemplateStorage', name: 'Implant Assembly Template Storage', retired: false },
  { uid: '1.2.840.10008.5.1.4.45.1', keyword: 'ImplantTemplateGroupStorage', name: 'Implant Template Group Storage', retired: false },
  // Not here: Media Storage Directory Storage (1.2.840.10008.1.3.10), the DICOMDIR, which PS3.10
  // keeps to media and is never sent with C-STORE; DCMTK leaves it out as well.
];

/** Verification and Query/Retrieve SOP Classes (PS3.4 Annex A and C), keyed by PS3.6 keyword. */
export const queryRetrieveSopClasses = {
  Verification: '1.2.840.10008.1.1',
  PatientRootQueryRetrieveInformationModelFind: '1.2.840.10008.5.1.4.1.2.1.1',
  PatientRootQueryRetrieveInformationModelMove: '1.2.840.10008.5.1.4.1.2.1.2',
  PatientRootQueryRetrieveInformationModelGet: '1.2.840.10008.5.1.4.1.2.1.3',
  StudyRootQueryRetrieveInformationModelFind: '1.2.840.10008.5.1.4.1.2.2.1',
  StudyRootQueryRetrieveInformationModelMove: '1.2.840.10008.5.1.4.1.2.2.2',
  StudyRootQueryRetrieveInformationModelGet: '1.2.840.10008.5.1.4.1.2.2.3',
  // Retired, but older SCUs still propose them.
  PatientStudyOnlyQueryRetrieveInformationModelFind: '1.2.840.10008.5.1.4.1.2.3.1',
  PatientStudyOnlyQueryRetrieveInformationModelMove: '1.2.840.10008.5.1.4.1.2.3.2',
  PatientStudyOnlyQueryRetrieveInformationModelGet: '1.2.840.10008.5.1.4.1.2.3.3',
} as const;

// PS3.5 9.1: a UID is dot-separated numeric components, at most 64 characters.
const uidPattern = /^[0-9]+(\.[0-9]+)*$/;

const byUid = new Map(storageSopClasses.map((c) => [c.uid, c]));
const byKeyword = new Map(storageSopClasses.map((c) => [c.keyword, c]));
const uidByKeyword = new Map<string, string>([
  ...storageSopClasses.map((c): [string, string] => [c.keyword, c.uid]),
  ...Object.entries(queryRetrieveSopClasses),
]);
// Many of DCMTK's names differ from the keywords only in case (`Multiframe` vs `MultiFrame`), so a
// case-insensitive fallback also accepts DCMTK's names of almost all current classes.
const uidByLowerKeyword = new Map([...uidByKeyword].map(([k, uid]) => [k.toLowerCase(), uid]));

export function isStorageSopClass(uid: string): boolean {
  return byUid.has(uid);
}

export function sopClassByKeyword(keyword: string): SopClass | undefined {
  return byKeyword.get(keyword);
}

/** Keyword of a storage SOP class UID; undefined for an unknown or non-storage UID. */
export function sopClassKeyword(uid: string): string | undefined {
  return byUid.get(uid)?.keyword;
}

/**
 * Resolves a configured SOP class, given as a keyword (storage, Verification or Query/Retrieve)
 * or as a UID. Any well-formed UID is returned as is, so private SOP classes can be configured.
 */
export function sopClassUidFromNameOrUid(s: string): string | undefined {
  const text = s.trim();
  if (uidPattern.test(text)) return text.length <= 64 ? text : undefined;
  return uidByKeyword.get(text) ?? uidByLowerKeyword.get(text.toLowerCase());
}
